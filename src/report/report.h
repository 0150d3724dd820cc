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

}  // namespace petseg::report
