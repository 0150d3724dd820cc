// runs/<name>/report.html: one self-contained page (no network, images inlined) with the loss and mIoU curves,
// the per-class IoU table, the latest prediction grid, the time breakdown and the run's config.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "report/epoch_record.h"

namespace petseg::report {

// `history`: the run's epochs so far; `config_json`: the run's config.
void write_report(const std::filesystem::path& run_dir, const std::vector<EpochRecord>& history,
                  const std::string& config_json, const std::filesystem::path& latest_grid_png);

}  // namespace petseg::report
