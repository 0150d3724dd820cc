// Model step timings: per case petseg's variants, then Python's eager ones (row by row as they come), then ONNX
// Runtime on petseg's export, then every torch.compile variant in its own time-boxed process; the results JSON
// rewritten after each row.
#include "bench/model_bench.h"

#include <ATen/Context.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/environment.h"
#include "bench/model_bench_plan.h"
#include "bench/python_reference.h"
#include "core/autocast.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/factory.h"
#include "model/fold.h"
#include "model/inference_model.h"
#include "model/onnx_export.h"
#include "model/torchscript.h"
#include "train/grad_scaler.h"
#include "train/optimizer.h"
#include "train/profiling.h"
#include "train/runner.h"
#include "train/step.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Timing {
  double median = 0;  // seconds per step
  double warmup = 0;  // all untimed steps together
};

// Median seconds of `fn` after `warmup` untimed calls, each call finished on the device before the clock stops.
Timing time_steps(const std::function<void()>& fn, int warmup, int repeats, bool cuda) {
  auto timed = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (cuda) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  Timing t;
  for (int i = 0; i < warmup; ++i) t.warmup += timed();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) times.push_back(timed());
  std::sort(times.begin(), times.end());
  t.median = times[times.size() / 2];
  return t;
}

// As torchvision's builder with weights=None, num_classes=3, aux_loss=False (what the Python side builds).
model::SegmentationModel fresh_model(const std::string& name, const at::Device& device) {
  at::manual_seed(0);
  model::SegmentationModel net = model::find_model(name).build(3, /*aux_loss=*/false);
  net->to(device);
  return net;
}

// TF32 as Python's torch.backends flags: off for the fp32 variants, on for the rest (what stays fp32 under
// autocast runs in TF32, Python's default for convolutions).
void set_tf32(const Variant& v) {
  const bool tf32 = v.precision != "fp32";
  at::globalContext().setAllowTF32CuBLAS(tf32);
  at::globalContext().setAllowTF32CuDNN(tf32);
}

at::ScalarType weight_dtype(const Variant& v) { return v.precision == "fp16w" ? at::kHalf : at::kBFloat16; }

// Every floating-point parameter and buffer cast to `dtype` (BatchNorm's integer counter stays as it is).
void cast_floating(torch::nn::Module& module, at::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (at::Tensor& p : module.parameters()) {
    if (p.is_floating_point()) p.set_data(p.to(dtype));
  }
  for (at::Tensor& b : module.buffers()) {
    if (b.is_floating_point()) b.set_data(b.to(dtype));
  }
}

// The folded and fused rows in fp32, TF32 or bf16 weights run model::InferenceModel, the very model eval and predict
// run (BatchNorm folded, in-place activations, InferenceMode; fused: on the CPU the FusedProgram, which eval and
// predict run there; folded: the plain eager forward), in the variant's memory format.
bool runs_inference_model(const Variant& v) {
  return (v.mode == "folded" || v.mode == "fused") &&
         (v.precision == "fp32" || v.precision == "tf32" || v.precision == "bf16w");
}

// The other inference rows: eval mode; folded (under autocast or with fp16 weights): every BatchNorm folded into its
// convolution (model/fold.h); bf16w/fp16w: the weights cast; channels_last last (folding writes new, contiguous
// weights).
void prepare_for_inference(model::SegmentationModelImpl& net, const Variant& v) {
  net.eval();
  if (v.mode == "folded" || v.mode == "fused") model::fold_batchnorm(net);
  if (v.cast_weights()) cast_floating(net, weight_dtype(v));
  if (v.channels_last) model::convert_to_channels_last(net);
}

Timing time_inference(const Variant& v, model::SegmentationModel& net, at::Tensor x, const at::Device& device,
                      int warmup, int repeats) {
  if (runs_inference_model(v)) {
    model::InferenceModelOptions options;
    options.dtype = v.cast_weights() ? weight_dtype(v) : at::kFloat;
    options.memory_format = v.channels_last ? "channels-last" : "contiguous";
    options.fuse = v.mode == "fused";
    model::InferenceModel inference(net, device, options);
    // The input in the row's type and layout before timing, as every other row and Python's have it.
    x = x.to(options.dtype);
    if (v.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    return time_steps([&] { inference.forward(x); }, warmup, repeats, device.is_cuda());
  }
  prepare_for_inference(*net, v);
  if (v.cast_weights()) x = x.to(weight_dtype(v));
  if (v.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  torch::NoGradGuard no_grad;
  if (v.mode == "torchscript") {
    torch::jit::Module fast = model::optimize_for_inference(model::trace_model(*net, x));
    return time_steps([&] { model::run_scripted(fast, x); }, warmup, repeats, device.is_cuda());
  }
  const at::ScalarType amp_dtype = v.precision == "fp16" ? at::kHalf : at::kBFloat16;
  return time_steps(
      [&] {
        AutocastGuard autocast(device.type(), amp_dtype, v.autocast());
        net->forward(x);
      },
      warmup, repeats, device.is_cuda());
}

// fused_sgd: the train step's SGD is training's fused one (train/optimizer.h), else libtorch's per-parameter loop.
Timing time_petseg(const Case& c, const Variant& v, const std::string& name, const at::Device& device, int warmup,
                   int repeats, bool fused_sgd) {
  set_tf32(v);
  model::SegmentationModel net = fresh_model(name, device);
  at::Tensor x = at::randn({c.batch, 3, c.size, c.size}, at::TensorOptions().device(device));
  if (c.kind == "infer") return time_inference(v, net, x, device, warmup, repeats);
  if (v.channels_last) {
    model::convert_to_channels_last(*net);
    x = x.contiguous(at::MemoryFormat::ChannelsLast);
  }
  const bool amp = v.autocast();
  const at::ScalarType amp_dtype = v.precision == "fp16" ? at::kHalf : at::kBFloat16;
  net->train();
  const at::Tensor target = at::randint(0, 3, {c.batch, c.size, c.size}, at::TensorOptions(at::kLong).device(device));
  train::RunSpec sgd;  // SGD lr 0.01, momentum 0.9, weight decay 1e-4: what the Python reference steps with
  sgd.optimizer = "sgd";
  sgd.lr = 0.01;
  sgd.momentum = 0.9;
  sgd.weight_decay = 1e-4;
  const std::unique_ptr<torch::optim::Optimizer> opt = train::make_optimizer(sgd, net->parameters(), fused_sgd);
  train::Runner runner(net, /*script=*/v.mode == "torchscript");
  std::optional<train::GradScaler> scaler;
  if (v.precision == "fp16") scaler.emplace(device);
  // Training's own step (train/step.h): the same loss, scaler and optimizer path as petseg train runs.
  train::TrainStep step;
  step.device = device;
  step.precision = {amp, amp_dtype, v.channels_last, {}};
  step.runner = &runner;
  step.optimizer = opt.get();
  step.scaler = scaler ? &*scaler : nullptr;
  return time_steps([&] { step(x, target); }, warmup, repeats, device.is_cuda());
}

// Forward FLOPs of one image at `size` (eval mode, fp32), as the profiler counts them.
double forward_flops_per_image(const std::string& name, int size, const at::Device& device) {
  model::SegmentationModel net = fresh_model(name, device);
  net->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::zeros({1, 3, size, size}, at::TensorOptions().device(device));
  return train::count_flops([&] { net->forward(x); });
}

// Dense peak FLOP/s (fp32 without tensor cores, TF32, bf16/fp16) of the GPUs the bench knows, from their data sheets.
struct Peak {
  const char* name_contains;
  double fp32, tf32, half;
};
constexpr Peak kPeaks[] = {
    {"H100 PCIe", 51.2e12, 378e12, 756e12},
    {"H100", 66.9e12, 494.7e12, 989.4e12},  // SXM (HBM3)
    {"H200", 66.9e12, 494.7e12, 989.4e12},
    {"A100", 19.5e12, 156e12, 312e12},
};

void set_peaks(const json& environment, ModelBenchResult& result) {
  if (!environment.contains("gpu") || !environment["gpu"].is_object()) return;
  const std::string name = environment["gpu"].value("name", "");
  for (const Peak& p : kPeaks) {
    if (name.find(p.name_contains) != std::string::npos) {
      result.peak_fp32 = p.fp32, result.peak_tf32 = p.tf32, result.peak_half = p.half;
      return;
    }
  }
}

// The run's state, and the JSON that mirrors it after every change.
class Recorder {
 public:
  Recorder(const ModelBenchOptions& options, ModelBenchResult& result) : options_(options), result_(result) {}
  void save() const {
    if (options_.json_out.empty()) return;
    if (options_.json_out.has_parent_path()) fs::create_directories(options_.json_out.parent_path());
    write_file_atomic(options_.json_out, model_bench_json(result_));
  }
  // The rows of `case_name` and `variant` (one per SGD for petseg's train rows).
  void update(const std::string& case_name, const std::string& variant, const std::function<void(ModelBenchRow&)>& f) {
    for (ModelBenchRow& r : result_.rows) {
      if (r.case_name == case_name && r.variant == variant) f(r);
    }
    save();
  }
  ModelBenchResult& result() { return result_; }

 private:
  const ModelBenchOptions& options_;
  ModelBenchResult& result_;
};

void add_note(ModelBenchRow& r, const std::string& note) { r.note += (r.note.empty() ? "" : "; ") + note; }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct Run {
  const ModelBenchOptions& options;
  at::Device device;
  bool python;  // turned off for the rest of the run when the interpreter has no torch
  Recorder& recorder;
  std::string ort_skipped;  // set for the rest of the run when the interpreter has no onnxruntime
};

void measure_petseg(Run& run, const Case& c) {
  ModelBenchResult& result = run.recorder.result();
  for (ModelBenchRow& row : result.rows) {
    if (row.case_name != c.name() || !parse_variant(row.variant).runs_in_petseg()) continue;
    const Variant v = parse_variant(row.variant);
    try {
      const Timing t = time_petseg(c, v, run.options.model, run.device, result.warmup, result.repeats,
                                   row.optimizer != "loop");
      row.petseg_seconds = t.median;
      row.petseg_warmup_seconds = t.warmup;
    } catch (const std::exception& e) {
      add_note(row, "petseg failed: " + first_line(e.what()));
      log_warning("bench model: ", row.case_name, " ", row.variant, ": ", e.what());
    }
    if (run.device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
    log_info("bench model: ", row.case_name, " ", row.variant, row.optimizer.empty() ? "" : " (" + row.optimizer + " SGD)",
             ": petseg ", row.petseg_seconds ? std::to_string(*row.petseg_seconds) + " s" : "-");
    run.recorder.save();
  }
}

std::vector<std::string> python_args(const Run& run, const Case& c, const std::vector<std::string>& variants) {
  const ModelBenchResult& r = run.recorder.result();
  return {"--model", run.options.model, "--case", c.kind, "--batch", std::to_string(c.batch), "--size",
          std::to_string(c.size), "--variants", join(variants), "--device", run.device.is_cuda() ? "cuda" : "cpu",
          "--threads", std::to_string(r.threads), "--warmup", std::to_string(r.warmup), "--repeats",
          std::to_string(r.repeats), "--cudnn-benchmark", r.cudnn_benchmark ? "1" : "0"};
}

// One Python process for `variants` of case `c`, each row filled in as its line arrives. A variant that fails is
// noted on its row; a process stopped at its time box leaves a note on the rows it did not reach.
void measure_python(Run& run, const Case& c, const std::vector<std::string>& variants, double timeout_s) {
  if (!run.python || variants.empty()) return;
  std::vector<std::string> reported;
  ReferenceStream stream;
  stream.timeout_s = timeout_s;
  stream.on_result = [&](const json& line) {
    if (!line.contains("variant")) return;
    const std::string variant = line.at("variant").get<std::string>();
    reported.push_back(variant);
    run.recorder.update(c.name(), variant, [&](ModelBenchRow& row) {
      if (line.contains("error")) return add_note(row, "Python failed: " + line.at("error").get<std::string>());
      row.python_seconds = line.at("seconds").get<double>();
      row.python_first_step_seconds = line.value("first_step_seconds", 0.0);
      row.python_warmup_seconds = line.value("warmup_seconds", 0.0);
    });
    log_info("bench model: ", c.name(), " ", variant, ": python ",
             line.contains("seconds") ? std::to_string(line.at("seconds").get<double>()) + " s" : "failed");
  };
  std::string missed;
  try {
    const ReferenceRun ref = run_reference(run.options.python_exe, "model_bench.py", python_args(run, c, variants),
                                           {}, stream);
    if (ref.timed_out) missed = "Python stopped at its time box (" + std::to_string(int(timeout_s)) + " s)";
    if (!ref.skipped.empty()) {
      run.python = false;
      run.recorder.result().python_note = ref.skipped;
    }
  } catch (const std::exception& e) {
    missed = "Python failed: " + first_line(e.what());
    log_warning("bench model: Python failed on ", c.name(), ": ", e.what());
  }
  if (missed.empty()) return;
  for (const std::string& v : variants) {
    if (std::find(reported.begin(), reported.end(), v) != reported.end()) continue;
    run.recorder.update(c.name(), v, [&](ModelBenchRow& row) { add_note(row, missed); });
  }
}

// ONNX Runtime on `variant` of case `c`: petseg's model, built as the other rows build it, exported with
// model::export_onnx (BatchNorm folded, the case's input shape fixed; fp16w: float16 weights) into a temporary file,
// and timed by bench/python/ort_bench.py with the case's batch, size, threads, warm-up and repeats. What fails (the
// export, the session, an interpreter without onnxruntime) is noted on the row and the run goes on.
void measure_ort(Run& run, const Case& c, const std::string& variant) {
  auto note = [&](const std::string& text) {
    run.recorder.update(c.name(), variant, [&](ModelBenchRow& row) { add_note(row, text); });
    log_warning("bench model: ", c.name(), " ", variant, ": ", text);
  };
  if (!run.ort_skipped.empty()) return note(run.ort_skipped);
  const ModelBenchResult& r = run.recorder.result();
  const fs::path file = fs::temp_directory_path() /
                        ("petseg-bench-" + std::to_string(::getpid()) + "-" + c.kind + "-" + variant + ".onnx");
  try {
    model::SegmentationModel net = fresh_model(run.options.model, at::kCPU);
    net->eval();
    model::OnnxExportOptions o;
    o.static_shape = {c.batch, c.size, c.size};
    o.fp16 = parse_variant(variant).precision == "fp16w";
    o.force = true;
    o.model_name = run.options.model;
    o.image_size = c.size;
    model::export_onnx(*net, file, o);
  } catch (const std::exception& e) {
    return note("ONNX export failed: " + first_line(e.what()));
  }
  ReferenceStream stream;
  stream.on_result = [&](const json& line) {
    if (!line.contains("variant")) return;
    run.recorder.update(c.name(), variant, [&](ModelBenchRow& row) {
      if (line.contains("error")) return add_note(row, "ONNX Runtime failed: " + line.at("error").get<std::string>());
      row.ort_seconds = line.at("seconds").get<double>();
      row.ort_warmup_seconds = line.value("warmup_seconds", 0.0);
      row.ort_session_seconds = line.value("session_seconds", 0.0);
    });
    log_info("bench model: ", c.name(), " ", variant, ": onnxruntime ",
             line.contains("seconds") ? std::to_string(line.at("seconds").get<double>()) + " s" : "failed");
  };
  const std::vector<std::string> args = {"--onnx",    file.string(),
                                         "--variant", variant,
                                         "--batch",   std::to_string(c.batch),
                                         "--size",    std::to_string(c.size),
                                         "--device",  run.device.is_cuda() ? "cuda" : "cpu",
                                         "--threads", std::to_string(r.threads),
                                         "--warmup",  std::to_string(r.warmup),
                                         "--repeats", std::to_string(r.repeats)};
  try {
    const ReferenceRun ref = run_reference(run.options.python_exe, "ort_bench.py", args, {}, stream);
    if (!ref.skipped.empty()) {
      run.ort_skipped = "ONNX Runtime not run: " + ref.skipped;
      note(run.ort_skipped);
    } else if (ref.result && ref.result->contains("onnxruntime")) {
      run.recorder.result().onnxruntime_version = ref.result->at("onnxruntime").get<std::string>();
      run.recorder.save();
    }
  } catch (const std::exception& e) {
    note("ONNX Runtime failed: " + first_line(e.what()));
  }
  std::error_code ignored;
  fs::remove(file, ignored);
}

// Every row the run will measure, in the order they are measured, before the first is: a JSON read after a stop
// shows what was not reached.
std::vector<ModelBenchRow> planned_rows(const std::vector<Case>& cases, const std::vector<std::string>& impls) {
  std::vector<ModelBenchRow> rows;
  for (const Case& c : cases) {
    for (const std::string& name : c.variants) {
      const bool per_impl = c.kind == "train" && parse_variant(name).runs_in_petseg();
      for (const std::string& impl : per_impl ? impls : std::vector<std::string>{""}) {
        ModelBenchRow row;
        row.case_name = c.name(), row.kind = c.kind, row.batch = c.batch, row.size = c.size;
        row.variant = name, row.optimizer = impl;
        rows.push_back(row);
      }
    }
  }
  return rows;
}

std::vector<std::string> variants_where(const Case& c, const std::function<bool(const Variant&)>& keep) {
  std::vector<std::string> out;
  for (const std::string& v : c.variants) {
    if (keep(parse_variant(v))) out.push_back(v);
  }
  return out;
}

ModelBenchResult start_result(const ModelBenchOptions& options, const at::Device& device) {
  const bool cuda = device.is_cuda();
  ModelBenchResult result;
  result.model = options.model;
  result.device = cuda ? "cuda" : "cpu";
  result.threads = configure_threads(options.threads);
  result.warmup = options.warmup >= 0 ? options.warmup : (cuda ? 5 : 1);
  result.repeats = options.repeats >= 1 ? options.repeats : (cuda ? 10 : 3);
  result.cudnn_benchmark = cuda && options.cudnn_benchmark;
  const json environment = describe_environment(options.python ? reference_python(options.python_exe) : "");
  result.environment = environment.dump();
  if (cuda) set_peaks(environment, result);
  if (!options.ceilings.empty()) result.ceilings = read_ceilings(options.ceilings);
  if (!options.python) result.python_note = "Python reference not run (--no-python)";
  return result;
}

}  // namespace

ModelBenchResult run_model_bench(const ModelBenchOptions& options) {
  const at::Device device = resolve_device(options.device);
  const bool cuda = device.is_cuda();
  const std::vector<Case> cases = chosen_cases(options, cuda);
  // As eval and predict run (train does not): only when every case is an inference case.
  if (std::all_of(cases.begin(), cases.end(), [](const Case& c) { return c.kind == "infer"; })) {
    keep_freed_host_memory();
  }
  const std::vector<std::string> impls = optimizer_impls(options);
  ModelBenchResult result = start_result(options, device);
  // As training runs on CUDA; the Python side is given the same setting.
  if (cuda) at::globalContext().setBenchmarkCuDNN(result.cudnn_benchmark);
  result.rows = planned_rows(cases, impls);
  Recorder recorder(options, result);
  recorder.save();
  Run run{options, device, options.python, recorder, /*ort_skipped=*/""};
  std::map<int, double> forward_flops;  // per image size
  for (const Case& c : cases) {
    if (!forward_flops.count(c.size)) forward_flops[c.size] = forward_flops_per_image(options.model, c.size, device);
    for (ModelBenchRow& r : result.rows) {
      if (r.size == c.size) r.flops_per_image = forward_flops[c.size] * (r.kind == "train" ? 3.0 : 1.0);
    }
    measure_petseg(run, c);
    measure_python(run, c, variants_where(c, [](const Variant& v) { return v.runs_in_python() && !v.compiled(); }),
                   /*timeout_s=*/0);
    for (const std::string& v : variants_where(c, [](const Variant& v) { return v.onnx_runtime(); })) {
      measure_ort(run, c, v);
    }
  }
  // torch.compile last, each variant in its own process and time box: its compilation can take minutes.
  for (const Case& c : cases) {
    for (const std::string& v : variants_where(c, [](const Variant& v) { return v.compiled(); })) {
      measure_python(run, c, {v}, options.compile_timeout_s);
    }
  }
  result.complete = true;
  recorder.save();
  return result;
}

}  // namespace petseg::bench
