// runs/<name>/report.html: one self-contained page (no network, images inlined) with the loss and mIoU curves,
// the per-class IoU table, the latest prediction grid, the time breakdown and the run's config.
#pragma once

#include <filesystem>
#include <string>

namespace petseg::report {

// `history_json`: array of per-epoch objects as metrics.jsonl holds them; `config_json`: the run's config.
void write_report(const std::filesystem::path& run_dir, const std::string& history_json, const std::string& config_json,
                  const std::filesystem::path& latest_grid_png);

}  // namespace petseg::report
