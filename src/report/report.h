// runs/<name>/report.html: one self-contained page (no network, images inlined) with the loss and mIoU curves,
// the per-class IoU table, the latest prediction grid, the time breakdown and the run's config.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "image/palette.h"
#include "report/epoch_record.h"

namespace petseg::report {

// What the report calls the run's model and data set, and the colours of its classes (from the data set's layout).
struct ReportHeader {
  std::string model;       // torchvision's name: "deeplabv3_resnet101"
  std::string data_title;  // "Oxford-IIIT Pet", "Pascal VOC", a folder's name
  image::Palette palette;
};

// `history`: the run's epochs so far; `config_json`: the run's config ({"spec": {...}, "exec": {...}}), shown as a
// table of the options that set it.
void write_report(const std::filesystem::path& run_dir, const std::vector<EpochRecord>& history,
                  const ReportHeader& header, const std::string& config_json,
                  const std::filesystem::path& latest_grid_png);

// Axis ticks a reader can take in at a glance: multiples of 1, 2 or 5 times a power of ten that cover [lo, hi] in
// at most `max_ticks` (>= 2) steps, first <= lo, last >= hi.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 5);

// The configuration as a reader sets it: one row per option ("--batch-size", "8"), the run spec's then the execution
// options', from the run's config JSON ({"spec": {...}, "exec": {...}}; each key is its option's name).
std::vector<std::pair<std::string, std::string>> option_rows(const std::string& config_json);

}  // namespace petseg::report
