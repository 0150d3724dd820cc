// `petseg loader`: one pass of the data loader over a few epochs, reporting its throughput (the data side of
// training, without the model).
#pragma once

#include <filesystem>

#include "data/loader.h"

namespace petseg::data {

// One pass of the loader over `epochs` epochs, printing images/s per epoch (the data side of training).
void run_loader_pass(const std::filesystem::path& data, Split split, const DatasetOptions& dataset,
                     const LoaderOptions& loader, int epochs);

}  // namespace petseg::data
