// Option groups and error messages of the petseg command line (apps/petseg.cpp wires them to commands).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "data/loader.h"
#include "model/factory.h"
#include "train/config.h"

namespace petseg::cli {

// CLI11's messages do not say what would have been valid; ours do.
std::string failure_message(const CLI::App* app, const CLI::Error& e);
// Options every loader-driven command shares, with the original project's spellings as aliases.
void add_loader_options(CLI::App* cmd, data::LoaderOptions& lo, std::string& border);
// --device auto|cpu|cuda.
void add_device_option(CLI::App* cmd, std::string& device);
// The model options of every command that builds one; weights may be named (coco, imagenet, a torchvision file
// name) and come from `mirror`.
void add_model_options(CLI::App* cmd, model::ModelConfig& mc, std::string& mirror);
// Named weights to files in torch.hub's cache, downloaded if needed (fetch/weights_cache.h).
void resolve_model_weights(model::ModelConfig& mc, const std::string& mirror);
// Everything `petseg train` takes.
void add_train_options(CLI::App* cmd, train::TrainConfig& tc, std::string& resume, int& nproc_per_node,
                       std::string& mirror);

}  // namespace petseg::cli
