// Model step timings, petseg and Python interleaved case by case, on the CPU or a GPU.
#include "bench/model_bench.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/environment.h"
#include "bench/python_reference.h"
#include "core/autocast.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/factory.h"
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

// [torchscript_|compile_][cl_](fp32|tf32|bf16|fp16), named canonically ("cl" for channels_last fp32).
struct Variant {
  std::string mode = "eager";  // eager | torchscript | compile (Python only)
  bool channels_last = false;
  std::string precision = "fp32";
  std::string name() const {
    std::string n = mode == "eager" ? "" : mode;
    if (channels_last) n += (n.empty() ? "" : "_") + std::string("cl");
    if (precision != "fp32" || n.empty()) n += (n.empty() ? "" : "_") + precision;
    return n;
  }
};

Variant parse_variant(const std::string& text) {
  Variant v;
  std::istringstream in(text);
  for (std::string token; std::getline(in, token, '_');) {
    if (token == "torchscript" || token == "compile") {
      v.mode = token;
    } else if (token == "cl") {
      v.channels_last = true;
    } else if (token == "fp32" || token == "tf32" || token == "bf16" || token == "fp16") {
      v.precision = token;
    } else {
      PETSEG_FAIL("bench model: unknown variant \"", text, "\" (token \"", token,
                  "\"); a variant is [torchscript_|compile_][cl_](fp32|tf32|bf16|fp16), e.g. cl_bf16");
    }
  }
  PETSEG_CHECK(v.mode != "torchscript" || v.precision == "fp32" || v.precision == "tf32",
               "bench model: TorchScript variants run in fp32 or tf32, not ", v.precision);
  return v;
}

struct Case {
  std::string kind;  // infer | train
  int batch = 0, size = 0;
  std::vector<std::string> variants;
  std::string name() const {
    return kind + " b" + std::to_string(batch) + " " + std::to_string(size) + "x" + std::to_string(size);
  }
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, sep);) {
    if (!x.empty()) out.push_back(x);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

// What each device measures by default: the original's sizes where the machine can afford them, every precision
// the device has, channels_last, TorchScript, and Python's torch.compile.
std::vector<Case> default_cases(bool cuda, bool compile) {
  auto with = [&](std::vector<std::string> v, const std::vector<std::string>& compiled) {
    if (compile) v.insert(v.end(), compiled.begin(), compiled.end());
    return v;
  };
  if (cuda) {
    return {{"train", 8, 520,
             with({"fp32", "tf32", "bf16", "fp16", "cl_bf16", "cl_fp16"}, {"compile_bf16", "compile_cl_bf16"})},
            {"infer", 8, 520, with({"fp32", "tf32", "bf16", "torchscript", "cl_bf16"}, {"compile_cl_bf16"})}};
  }
  return {{"infer", 2, 256, with({"fp32", "torchscript", "bf16", "cl", "cl_bf16"}, {"compile", "compile_cl"})},
          {"infer", 2, 520, {"fp32", "torchscript"}},
          {"train", 4, 128,
           with({"fp32", "torchscript", "bf16", "cl", "cl_bf16"}, {"compile", "compile_cl", "compile_cl_bf16"})}};
}

std::vector<Case> chosen_cases(const ModelBenchOptions& o, bool cuda) {
  std::vector<Case> cases = default_cases(cuda, o.compile && o.python);
  if (!o.cases.empty()) {
    std::vector<Case> asked;
    for (const std::string& spec : split(o.cases, ',')) {
      const auto parts = split(spec, ':');
      PETSEG_CHECK(parts.size() == 3 && (parts[0] == "train" || parts[0] == "infer"), "bench model: --cases \"", spec,
                   "\" is not KIND:BATCH:SIZE with KIND train or infer (e.g. train:8:520)");
      Case c{parts[0], std::stoi(parts[1]), std::stoi(parts[2]), {}};
      PETSEG_CHECK(c.batch >= 1 && c.size >= 32, "bench model: --cases \"", spec, "\" needs batch >= 1, size >= 32");
      for (const Case& d : cases) {
        if (d.kind == c.kind && c.variants.empty()) c.variants = d.variants;
      }
      asked.push_back(c);
    }
    cases = asked;
  }
  if (!o.variants.empty()) {
    for (Case& c : cases) c.variants = split(o.variants, ',');
  }
  for (Case& c : cases) {
    for (std::string& v : c.variants) v = parse_variant(v).name();
    if (!o.python || !o.compile) {
      c.variants.erase(std::remove_if(c.variants.begin(), c.variants.end(),
                                      [](const std::string& v) { return parse_variant(v).mode == "compile"; }),
                       c.variants.end());
    }
  }
  return cases;
}

// --optimizer-impl: which SGDs the train steps are timed with, each once.
std::vector<std::string> optimizer_impls(const ModelBenchOptions& o) {
  std::vector<std::string> impls;
  for (const std::string& impl : split(o.optimizer_impls, ',')) {
    PETSEG_CHECK(impl == "fused" || impl == "loop", "bench model: unknown --optimizer-impl \"", impl,
                 "\"; valid: fused, loop");
    if (std::find(impls.begin(), impls.end(), impl) == impls.end()) impls.push_back(impl);
  }
  PETSEG_CHECK(!impls.empty(), "bench model: --optimizer-impl is empty; valid: fused, loop");
  return impls;
}

// Median seconds of `fn`, each call finished on the device before the clock stops.
double median_seconds(const std::function<void()>& fn, int warmup, int repeats, bool cuda) {
  auto timed = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (cuda) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0; i < warmup; ++i) timed();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) times.push_back(timed());
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
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

// fused_sgd: the train step's SGD is training's fused one (train/optimizer.h), else libtorch's per-parameter loop.
double time_petseg(const Case& c, const Variant& v, const std::string& name, const at::Device& device, int warmup,
                   int repeats, bool fused_sgd) {
  set_tf32(v);
  model::SegmentationModel net = fresh_model(name, device);
  at::Tensor x = at::randn({c.batch, 3, c.size, c.size}, at::TensorOptions().device(device));
  if (v.channels_last) {
    model::convert_to_channels_last(*net);
    x = x.contiguous(at::MemoryFormat::ChannelsLast);
  }
  const bool amp = v.precision == "bf16" || v.precision == "fp16";
  const at::ScalarType amp_dtype = v.precision == "fp16" ? at::kHalf : at::kBFloat16;
  const bool cuda = device.is_cuda();
  if (c.kind == "infer") {
    net->eval();
    torch::NoGradGuard no_grad;
    if (v.mode == "torchscript") {
      torch::jit::Module fast = model::optimize_for_inference(model::trace_model(*net, x));
      return median_seconds([&] { model::run_scripted(fast, x); }, warmup, repeats, cuda);
    }
    return median_seconds(
        [&] {
          AutocastGuard autocast(device.type(), amp_dtype, amp);
          net->forward(x);
        },
        warmup, repeats, cuda);
  }
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
  return median_seconds([&] { step(x, target); }, warmup, repeats, cuda);
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

std::optional<Peak> gpu_peak(const json& environment) {
  if (!environment.contains("gpu") || !environment["gpu"].is_object()) return std::nullopt;
  const std::string name = environment["gpu"].value("name", "");
  for (const Peak& p : kPeaks) {
    if (name.find(p.name_contains) != std::string::npos) return p;
  }
  return std::nullopt;
}

std::optional<double> peak_for(const ModelBenchResult& r, const std::string& variant) {
  const std::string precision = parse_variant(variant).precision;
  return precision == "fp32" ? r.peak_fp32 : precision == "tf32" ? r.peak_tf32 : r.peak_half;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

// The results JSON, rewritten after every case: a run stopped at a deadline keeps what it measured.
void write_model_json(const ModelBenchOptions& options, const ModelBenchResult& result, const json& environment,
                      int threads, int warmup, int repeats) {
  json rows = json::array();
  for (const auto& r : result.rows) {
    json j = {{"case", r.case_name}, {"kind", r.kind},       {"batch", r.batch},
              {"size", r.size},      {"variant", r.variant}, {"flops_per_image", r.flops_per_image}};
    if (!r.optimizer.empty()) j["optimizer"] = r.optimizer;
    for (const auto& [side, seconds] : {std::pair{"petseg", r.petseg_seconds}, {"python", r.python_seconds}}) {
      if (!seconds) continue;
      const double rate = r.batch / *seconds;
      j[std::string(side) + "_seconds"] = *seconds;
      j[std::string(side) + "_images_per_s"] = rate;
      if (const auto peak = peak_for(result, r.variant))
        j[std::string(side) + "_mfu"] = rate * r.flops_per_image / *peak;
    }
    if (r.petseg_seconds && r.python_seconds) j["petseg_over_python"] = *r.python_seconds / *r.petseg_seconds;
    if (r.python_first_step_seconds) j["python_first_step_seconds"] = *r.python_first_step_seconds;
    if (!r.note.empty()) j["note"] = r.note;
    rows.push_back(j);
  }
  const json doc = {{"benchmark", "model"},
                    {"model", options.model},
                    {"device", result.device},
                    {"threads", threads},
                    {"warmup", warmup},
                    {"repeats", repeats},
                    {"environment", environment},
                    {"peak_flops",
                     {{"fp32", result.peak_fp32 ? json(*result.peak_fp32) : json(nullptr)},
                      {"tf32", result.peak_tf32 ? json(*result.peak_tf32) : json(nullptr)},
                      {"bf16_fp16", result.peak_half ? json(*result.peak_half) : json(nullptr)}}},
                    {"rows", rows},
                    {"python_note", result.python_note}};
  if (options.json_out.has_parent_path()) fs::create_directories(options.json_out.parent_path());
  write_file_atomic(options.json_out, doc.dump(1) + "\n");
}

// Python's times of one case, per variant. A Python failure is reported on this case's rows and never loses the other
// cases or petseg's side; a Python that cannot run at all turns `python` off for the cases after (saying why).
struct PythonTimes {
  std::map<std::string, double> seconds, first;
  std::map<std::string, std::string> errors;  // per variant; "" for the whole case
};

PythonTimes python_times(const ModelBenchOptions& options, const Case& c, bool cuda, int threads, int warmup,
                         int repeats, bool& python, std::string& python_note) {
  PythonTimes py;
  if (!python) return py;
  try {
    const ReferenceRun run = run_reference(
        options.python_exe, "model_bench.py",
        {"--model", options.model, "--case", c.kind, "--batch", std::to_string(c.batch), "--size",
         std::to_string(c.size), "--variants", join(c.variants), "--device", cuda ? "cuda" : "cpu", "--threads",
         std::to_string(threads), "--warmup", std::to_string(warmup), "--repeats", std::to_string(repeats)});
    if (run.result) {
      for (const auto& [k, v] : run.result->at("seconds").items()) py.seconds[k] = v.get<double>();
      // Named, not iterated as temporaries: items() of a temporary would outlive it.
      const json first = run.result->value("first_step_seconds", json::object());
      const json errors = run.result->value("errors", json::object());
      for (const auto& [k, v] : first.items()) py.first[k] = v.get<double>();
      for (const auto& [k, v] : errors.items()) py.errors[k] = v.get<std::string>();
    } else {
      python = false;
      python_note = run.skipped;
    }
  } catch (const std::exception& e) {
    const std::string what = e.what();
    py.errors[""] = what.substr(0, what.find('\n'));
    log_warning("bench model: Python failed on ", c.name(), ": ", what);
  }
  return py;
}

}  // namespace

ModelBenchResult run_model_bench(const ModelBenchOptions& options) {
  const int threads = configure_threads(options.threads);
  const at::Device device = resolve_device(options.device);
  const bool cuda = device.is_cuda();
  // As training runs on CUDA (and the Python side sets the same): cuDNN picks its fastest algorithms per shape.
  if (cuda) at::globalContext().setBenchmarkCuDNN(true);
  const int warmup = options.warmup >= 0 ? options.warmup : (cuda ? 5 : 1);
  const int repeats = options.repeats >= 1 ? options.repeats : (cuda ? 10 : 3);
  const std::vector<Case> cases = chosen_cases(options, cuda);
  const std::vector<std::string> impls = optimizer_impls(options);
  ModelBenchResult result;
  result.model = options.model;
  result.device = cuda ? "cuda" : "cpu";
  const json environment = describe_environment(options.python ? reference_python(options.python_exe) : "");
  result.environment = environment.dump();
  if (const auto peak = gpu_peak(environment); peak && cuda) {
    result.peak_fp32 = peak->fp32;
    result.peak_tf32 = peak->tf32;
    result.peak_half = peak->half;
  }
  bool python = options.python;
  if (!python) result.python_note = "Python reference not run (--no-python)";
  std::map<int, double> forward_flops;  // per image size
  for (const Case& c : cases) {
    if (!forward_flops.count(c.size)) forward_flops[c.size] = forward_flops_per_image(options.model, c.size, device);
    const double flops = forward_flops[c.size] * (c.kind == "train" ? 3.0 : 1.0);
    const PythonTimes py = python_times(options, c, cuda, threads, warmup, repeats, python, result.python_note);
    for (const std::string& name : c.variants) {
      const Variant v = parse_variant(name);
      // A train step timed by petseg: once per SGD asked for, each row beside the same Python time.
      const bool per_impl = c.kind == "train" && v.mode != "compile";
      for (const std::string& impl : per_impl ? impls : std::vector<std::string>{""}) {
        ModelBenchRow row{c.name(), c.kind, c.batch, c.size, name, impl, std::nullopt, std::nullopt, flops};
        if (v.mode != "compile") {
          try {
            row.petseg_seconds = time_petseg(c, v, options.model, device, warmup, repeats, impl != "loop");
          } catch (const std::exception& e) {
            const std::string what = e.what();
            row.note = "petseg failed: " + what.substr(0, what.find('\n'));
            log_warning("bench model: ", row.case_name, " ", name, ": ", what);
          }
          if (cuda) c10::cuda::CUDACachingAllocator::emptyCache();
        }
        if (py.seconds.count(name)) row.python_seconds = py.seconds.at(name);
        if (py.first.count(name)) row.python_first_step_seconds = py.first.at(name);
        for (const std::string& key : {name, std::string()}) {
          if (py.errors.count(key)) row.note += (row.note.empty() ? "" : "; ") + ("Python failed: " + py.errors.at(key));
        }
        log_info("bench model: ", row.case_name, " ", name, impl.empty() ? "" : " (" + impl + " SGD)", ":",
                 row.petseg_seconds ? detail::str_cat(" petseg ", *row.petseg_seconds, " s") : "",
                 row.python_seconds ? detail::str_cat(" python ", *row.python_seconds, " s") : "");
        result.rows.push_back(row);
      }
    }
    if (!options.json_out.empty()) write_model_json(options, result, environment, threads, warmup, repeats);
  }
  return result;
}

namespace {

// A row timed with libtorch's loop SGD beside a fused one is the "before" of that row: shown, compared with its
// fused row, and left out of the per-case targets.
const ModelBenchRow* fused_row_of(const ModelBenchResult& result, const ModelBenchRow& r) {
  if (r.optimizer != "loop") return nullptr;
  for (const auto& f : result.rows) {
    if (f.case_name == r.case_name && f.variant == r.variant && f.optimizer == "fused") return &f;
  }
  return nullptr;
}

void format_row(std::ostream& os, const ModelBenchResult& result, const ModelBenchRow& r,
                const std::map<std::string, double>& fp32) {
  os << std::left << std::setw(19) << r.case_name << std::setw(17)
     << (r.variant + (r.optimizer == "loop" ? " loop-sgd" : "")) << std::right;
  for (const auto& s : {r.petseg_seconds, r.python_seconds}) {
    os << std::setw(9) << (s ? fixed(*s, 3) : "-") << std::setw(9) << (s ? fixed(r.batch / *s, 1) : "-");
  }
  const auto base = fp32.find(r.case_name);
  os << std::setw(11)
     << (r.petseg_seconds && r.python_seconds ? fixed(*r.python_seconds / *r.petseg_seconds, 2) + "x" : "-")
     << std::setw(11)
     << (r.petseg_seconds && base != fp32.end() ? fixed(base->second / *r.petseg_seconds, 2) + "x" : "-");
  const auto best = r.petseg_seconds ? r.petseg_seconds : r.python_seconds;
  os << std::setw(10) << (best ? fixed(r.batch * r.flops_per_image / *best / 1e12, 2) : "-");
  if (const auto peak = peak_for(result, r.variant)) {
    auto pct = [&](const std::optional<double>& s) {
      return s ? fixed(100 * r.batch * r.flops_per_image / *s / *peak, 1) + "%" : std::string("-");
    };
    os << std::setw(10) << pct(r.petseg_seconds) << " /" << std::setw(7) << pct(r.python_seconds);
  }
  if (parse_variant(r.variant).mode == "compile" && r.python_first_step_seconds && r.python_seconds) {
    os << "  (compilation: first step " << fixed(*r.python_first_step_seconds, 1) << " s)";
  }
  if (!r.note.empty()) os << "  " << r.note;
  os << "\n";
}

// One case's targets, measured, met or not.
void format_case_summary(std::ostream& os, const ModelBenchResult& result, const std::string& name) {
  const ModelBenchRow *petseg_best = nullptr, *python_best = nullptr, *petseg_fp32 = nullptr, *petseg_bf16 = nullptr;
  double worst_eager = 1e9;
  std::string worst_variant, fused_vs_loop;
  for (const auto& r : result.rows) {
    if (r.case_name != name) continue;
    if (const ModelBenchRow* fused = fused_row_of(result, r)) {
      if (r.petseg_seconds && fused->petseg_seconds) {
        fused_vs_loop += (fused_vs_loop.empty() ? "" : ", ") + r.variant + " " +
                         fixed(*r.petseg_seconds / *fused->petseg_seconds, 2) + "x";
      }
      continue;
    }
    if (r.petseg_seconds && (!petseg_best || *r.petseg_seconds < *petseg_best->petseg_seconds)) petseg_best = &r;
    if (r.python_seconds && (!python_best || *r.python_seconds < *python_best->python_seconds)) python_best = &r;
    if (r.variant == "fp32") petseg_fp32 = &r;
    if (r.variant == "bf16") petseg_bf16 = &r;
    const Variant v = parse_variant(r.variant);
    if (v.mode == "eager" && !v.channels_last && r.petseg_seconds && r.python_seconds) {
      const double ratio = *r.python_seconds / *r.petseg_seconds;
      if (ratio < worst_eager) worst_eager = ratio, worst_variant = r.variant;
    }
  }
  os << name << ":\n";
  if (worst_variant.size()) {
    os << "  petseg eager vs Python eager, lowest over the precisions: " << fixed(worst_eager, 2) << "x ("
       << worst_variant << ") -> " << (worst_eager >= 0.97 ? "met" : "NOT met") << " (target >= 0.97x)\n";
  }
  if (petseg_best && python_best) {
    const double ratio = *python_best->python_seconds / *petseg_best->petseg_seconds;
    os << "  best configuration: petseg " << petseg_best->variant << " " << fixed(*petseg_best->petseg_seconds, 3)
       << " s vs Python " << python_best->variant << " " << fixed(*python_best->python_seconds, 3)
       << " s = " << fixed(ratio, 2) << "x -> " << (ratio >= 1.0 ? "met" : "NOT met") << " (target >= 1.0x)\n";
  } else if (petseg_best) {
    os << "  best petseg configuration: " << petseg_best->variant << "\n";
  }
  if (petseg_fp32 && petseg_bf16 && petseg_fp32->petseg_seconds && petseg_bf16->petseg_seconds) {
    os << "  petseg bf16 autocast vs fp32: " << fixed(*petseg_fp32->petseg_seconds / *petseg_bf16->petseg_seconds, 2)
       << "x\n";
  }
  if (!fused_vs_loop.empty()) {
    os << "  petseg train step, fused SGD vs libtorch's loop (loop seconds / fused seconds): " << fused_vs_loop
       << "\n";
  }
}

}  // namespace

std::string format_model_bench(const ModelBenchResult& result) {
  const json environment = json::parse(result.environment);
  const bool mfu = result.peak_fp32.has_value();
  std::ostringstream os;
  os << result.model << ", 3 classes, on " << result.device << "; " << environment_line(environment) << "\n"
     << "seconds per step (median), images/s; train FLOPs = 3 x forward" << (mfu ? "; MFU = FLOP/s / dense peak" : "")
     << "\n\n";
  os << std::left << std::setw(19) << "case" << std::setw(17) << "variant" << std::right << std::setw(9) << "petseg"
     << std::setw(9) << "img/s" << std::setw(9) << "python" << std::setw(9) << "img/s" << std::setw(11) << "petseg/py"
     << std::setw(11) << "vs fp32" << std::setw(10) << "TFLOP/s" << (mfu ? "   MFU petseg/python" : "") << "\n";
  std::map<std::string, double> fp32;
  for (const auto& r : result.rows) {
    if (r.variant == "fp32" && r.petseg_seconds && !fused_row_of(result, r)) fp32[r.case_name] = *r.petseg_seconds;
  }
  for (const auto& r : result.rows) format_row(os, result, r, fp32);
  os << "\npetseg/py = Python seconds / petseg seconds for the same variant (> 1: petseg faster)\n";
  if (std::any_of(result.rows.begin(), result.rows.end(), [](const auto& r) { return r.optimizer == "loop"; })) {
    os << "loop-sgd = petseg's train step with libtorch's per-parameter SGD in place of the fused one\n";
  }
  std::vector<std::string> case_names;
  for (const auto& r : result.rows) {
    if (std::find(case_names.begin(), case_names.end(), r.case_name) == case_names.end()) {
      case_names.push_back(r.case_name);
    }
  }
  for (const std::string& name : case_names) format_case_summary(os, result, name);
  if (!result.python_note.empty()) os << result.python_note << "\n";
  return os.str();
}

}  // namespace petseg::bench
