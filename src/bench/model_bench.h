// `petseg bench model`: eval forward and training step of DeepLabV3, eager vs TorchScript, fp32 vs bf16 autocast,
// contiguous vs channels_last, each side by side with torchvision's model in Python (bench/python/model_bench.py)
// at the same thread count, in one run.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace petseg::bench {

struct ModelBenchOptions {
  std::string backbone = "resnet101";
  int threads = 0;  // 0: one per core
  int warmup = 1;
  int repeats = 3;  // the median is reported
  bool python = true;
  std::string python_exe;  // empty: reference_python()
  std::filesystem::path json_out;
};

struct ModelBenchRow {
  std::string case_name;  // "infer b2 256x256", "train b4 128x128"
  std::string variant;    // fp32, torchscript, bf16, cl, cl_bf16
  double petseg_seconds = 0;
  std::optional<double> python_seconds;
};

struct ModelBenchResult {
  std::vector<ModelBenchRow> rows;
  std::string python_note;
};

ModelBenchResult run_model_bench(const ModelBenchOptions& options);
std::string format_model_bench(const ModelBenchResult& result, const ModelBenchOptions& options);

}  // namespace petseg::bench
