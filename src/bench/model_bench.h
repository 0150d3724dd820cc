// `petseg bench model`: eval forward and training step of any registered model (model/registry.h) on the CPU or a GPU, per variant (precision:
// fp32, TF32, bf16 or fp16 autocast, fp16 training through the loss scaler; layout: contiguous or channels_last;
// eager or TorchScript), each side by side with torchvision's model in Python (bench/python/model_bench.py), which
// also runs torch.compile. Reports seconds per step, images/s, FLOP throughput and, on GPUs it knows, the model FLOP
// utilisation; and each side's best configuration, chosen by measuring.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace petseg::bench {

struct ModelBenchOptions {
  std::string model = "deeplabv3_resnet101";  // torchvision's name (model/registry.h)
  std::string device = "cpu";  // cpu | cuda | auto
  int threads = 0;             // 0: one per core
  int warmup = -1;             // untimed steps first; -1: 1 on the CPU, 5 on CUDA (torch.compile compiles here)
  int repeats = -1;            // timed steps, the median is reported; -1: 3 on the CPU, 10 on CUDA
  // "" = the device's default set; else cases "train:8:520,infer:2:256" and variants "fp32,bf16,cl_bf16,compile".
  std::string cases, variants;
  bool python = true;
  bool compile = true;  // Python's torch.compile variants (its compilation takes minutes on a small CPU)
  // petseg's train-step SGD: "fused" (ATen's fused kernels, what training uses), "loop" (libtorch's per-parameter
  // SGD) or both, "fused,loop": the before/after of the fused optimizer in one run.
  std::string optimizer_impls = "fused";
  std::string python_exe;  // empty: reference_python()
  std::filesystem::path json_out;
};

struct ModelBenchRow {
  std::string case_name;  // "train b4 128x128"
  std::string kind;       // infer | train
  int batch = 0, size = 0;
  std::string variant;    // fp32, tf32, bf16, fp16, cl, cl_bf16, torchscript, compile, compile_cl_bf16, ...
  std::string optimizer;  // train rows timed by petseg: fused | loop (its SGD; ModelBenchOptions::optimizer_impls)
  std::optional<double> petseg_seconds;  // absent for what only Python has (torch.compile)
  std::optional<double> python_seconds;
  double flops_per_image = 0;  // forward (infer) or forward + backward (train, 3x forward)
  std::optional<double> python_first_step_seconds;  // Python's first step: torch.compile compiles there
  std::string note;  // a side that failed on this row, and why (the other rows are still measured)
};

struct ModelBenchResult {
  std::vector<ModelBenchRow> rows;
  std::string model;   // torchvision's name
  std::string device;  // what ran: "cpu", "cuda"
  std::string python_note;
  std::string environment;       // JSON (bench/environment.h)
  std::optional<double> peak_fp32, peak_tf32, peak_half;  // FLOP/s of the GPU, when known
};

ModelBenchResult run_model_bench(const ModelBenchOptions& options);
std::string format_model_bench(const ModelBenchResult& result);

}  // namespace petseg::bench
