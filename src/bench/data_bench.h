// `petseg bench data`: loader throughput per worker count, side by side with the Python way (torch DataLoader + PIL +
// torchvision transforms, bench/python/data_bench.py) in the same run.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"

namespace petseg::bench {

struct DataBenchOptions {
  std::filesystem::path data;
  data::Split split = data::Split::kTrainval;
  data::LoaderOptions loader;  // num_workers is overridden per row
  std::vector<int> workers = {0, 1, 2, 4, 8};
  int epochs = 2;
  int repeats = 3;  // measurements per row; the median is reported (this machine is noisy)
  bool python = true;
  std::string python_exe;  // empty: reference_python()
  std::filesystem::path json_out;       // optional
};

struct DataBenchRow {
  int workers = 0;
  int64_t images = 0;              // per measurement
  double petseg_images_per_s = 0;  // median of the repeats
  double petseg_wait_share = 0;    // share of the consumer's time spent waiting (all of it here: no compute)
  std::optional<double> python_images_per_s;
};

struct DataBenchResult {
  std::vector<DataBenchRow> rows;
  std::string python_note;  // why the Python column is empty, when it is
};

DataBenchResult run_data_bench(const DataBenchOptions& options);
std::string format_data_bench(const DataBenchResult& result, const DataBenchOptions& options);

}  // namespace petseg::bench
