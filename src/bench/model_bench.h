// `petseg bench model`: eval forward and training step of any registered model (model/registry.h) on the CPU or a
// GPU, per variant (precision: fp32, TF32, bf16 or fp16 autocast, bf16/fp16 weights for inference, fp16 training
// through the loss scaler; layout: contiguous or channels_last; eager, TorchScript, or for inference petseg's
// BatchNorm-folded model), each beside torchvision's model in Python (bench/python/model_bench.py), which also runs
// torch.compile (with and without Inductor's freezing), and, for inference, ONNX Runtime on petseg's ONNX export of
// the model it measured (bench/python/ort_bench.py). Reports seconds per step, images/s, FLOP throughput and, on
// GPUs, the model FLOP utilisation against the data sheet's peak and against measured ceilings; and each side's best
// configuration, chosen by measuring, with petseg's best over Python's best and over ONNX Runtime's.
//
// Order, so that a run stopped at any point keeps the most telling figures (the results JSON is rewritten after
// every row): per case, petseg's variants, then Python's eager and TorchScript variants in one process (each
// reported as it is measured), then ONNX Runtime (one process per variant); then, last, every torch.compile variant
// in a Python process of its own with its own time box.
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
  int warmup = -1;             // untimed steps first, per variant; -1: 1 on the CPU, 5 on CUDA
  int repeats = -1;            // timed steps, the median is reported; -1: 3 on the CPU, 10 on CUDA
  // "" = the device's default set; else cases "train:8:520,infer:2:256" and variants "fp32,bf16,cl_bf16,compile".
  std::string cases, variants;
  bool python = true;
  bool compile = true;  // Python's torch.compile variants (its compilation takes minutes on a small CPU)
  // petseg's train-step SGD: "fused" (ATen's fused kernels, what training uses), "loop" (libtorch's per-parameter
  // SGD) or both, "fused,loop": the before/after of the fused optimizer in one run.
  std::string optimizer_impls = "fused";
  bool cudnn_benchmark = true;     // CUDA, both sides: cuDNN times its algorithms per shape (in the warm-up)
  double compile_timeout_s = 600;  // each torch.compile variant's Python process is stopped after this long
  // Measured ceilings (a JSON object with matmul_bf16_tflops and copy_gbps, as scripts/gpu_ceilings.py writes it):
  // the MFU against them is reported beside the data sheet's.
  std::filesystem::path ceilings;
  std::string python_exe;  // empty: reference_python()
  std::filesystem::path json_out;
};

struct ModelBenchRow {
  std::string case_name;  // "train b4 128x128"
  std::string kind;       // infer | train
  int batch = 0, size = 0;
  std::string variant;    // fp32, bf16, cl_bf16, torchscript, folded_cl_bf16w, compile_freeze_cl_bf16, ort, ...
  std::string optimizer;  // train rows timed by petseg: fused | loop (its SGD; ModelBenchOptions::optimizer_impls)
  // Each side's median seconds per step; absent where the side does not run the variant (torch.compile: Python
  // only; folded: petseg only; ort: ONNX Runtime only), or not measured yet.
  std::optional<double> petseg_seconds;
  std::optional<double> python_seconds;
  std::optional<double> ort_seconds;
  double flops_per_image = 0;  // forward (infer) or forward + backward (train, 3x forward)
  // The untimed warm-up steps of each side (cuDNN's autotuning, TorchScript's profiling runs, torch.compile's
  // compilation happen there), and Python's first step apart (where torch.compile compiles).
  std::optional<double> petseg_warmup_seconds, python_warmup_seconds, python_first_step_seconds;
  std::optional<double> ort_warmup_seconds, ort_session_seconds;  // ONNX Runtime's warm-up and session creation
  std::string note;  // a side that failed or was stopped on this row, and why (the other rows are still measured)
};

struct Ceilings {
  double matmul_bf16_flops = 0;  // FLOP/s of a large bf16 matrix product, measured on the device
  double copy_bytes_per_s = 0;   // device-to-device copy, bytes read + written per second
};

struct ModelBenchResult {
  std::vector<ModelBenchRow> rows;  // every planned row from the start; a row not measured yet has no seconds
  std::string model;   // torchvision's name
  std::string device;  // what ran: "cpu", "cuda"
  std::string python_note;
  std::string onnxruntime_version;  // as ort_bench.py reports it; empty until it has run
  std::string environment;  // JSON (bench/environment.h)
  int threads = 0, warmup = 0, repeats = 0;
  bool cudnn_benchmark = false;  // what both sides ran with (CUDA)
  std::optional<double> peak_fp32, peak_tf32, peak_half;  // FLOP/s of the GPU's data sheet, when known
  std::optional<Ceilings> ceilings;
  bool complete = false;  // false while running: a JSON read after a stop says so
};

ModelBenchResult run_model_bench(const ModelBenchOptions& options);
std::string format_model_bench(const ModelBenchResult& result);
// The results JSON, written after every row: per row petseg_seconds, python_seconds, ort_seconds, ..._images_per_s,
// ..._mfu, and case_best (each side's best variant in the row's case); per case ("cases") each side's best variant
// and seconds, petseg_over_python and petseg_over_ort (best against best, > 1: petseg faster).
std::string model_bench_json(const ModelBenchResult& result);
// Reads --ceilings' file, naming it on any error.
Ceilings read_ceilings(const std::filesystem::path& file);

}  // namespace petseg::bench
