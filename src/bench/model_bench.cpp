// Model step timings, petseg and Python interleaved case by case.
#include "bench/model_bench.h"

#include <ATen/Parallel.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/python_reference.h"
#include "core/autocast.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/process.h"
#include "model/deeplabv3.h"
#include "model/torchscript.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;

double median_seconds(const std::function<void()>& fn, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Case {
  std::string kind;  // infer | train
  int batch;
  int size;
  std::vector<std::string> variants;
  std::string name() const {
    return kind + " b" + std::to_string(batch) + " " + std::to_string(size) + "x" + std::to_string(size);
  }
};

model::DeepLabV3 fresh_model(const std::string& backbone) {
  model::DeepLabV3Options o;
  o.backbone = backbone;
  o.num_classes = 3;
  return model::DeepLabV3(o);
}

double time_petseg(const Case& c, const std::string& variant, const ModelBenchOptions& o) {
  at::manual_seed(0);
  model::DeepLabV3 net = fresh_model(o.backbone);
  at::Tensor x = at::randn({c.batch, 3, c.size, c.size});
  const bool channels_last = variant == "cl" || variant == "cl_bf16";
  const bool bf16 = variant == "bf16" || variant == "cl_bf16";
  if (channels_last) {
    model::convert_to_channels_last(*net);
    x = x.contiguous(at::MemoryFormat::ChannelsLast);
  }
  if (c.kind == "infer") {
    net->eval();
    torch::NoGradGuard no_grad;
    if (variant == "torchscript") {
      torch::jit::Module fast = model::optimize_for_inference(model::trace_model(*net, x));
      return median_seconds([&] { model::run_scripted(fast, x); }, o.warmup, o.repeats);
    }
    return median_seconds(
        [&] {
          AutocastGuard autocast(c10::DeviceType::CPU, at::kBFloat16, bf16);
          net->forward(x);
        },
        o.warmup, o.repeats);
  }
  net->train();
  const at::Tensor target = at::randint(0, 3, {c.batch, c.size, c.size}, at::kLong);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  std::optional<torch::jit::Module> traced;
  if (variant == "torchscript") traced = model::trace_model(*net, x);
  return median_seconds(
      [&] {
        opt.zero_grad(/*set_to_none=*/true);
        at::Tensor out;
        {
          AutocastGuard autocast(c10::DeviceType::CPU, at::kBFloat16, bf16);
          out = traced ? model::run_scripted(*traced, x).out : net->forward(x).out;
        }
        at::cross_entropy_loss(out.to(at::kFloat), target, {}, at::Reduction::Mean, /*ignore_index=*/255).backward();
        opt.step();
      },
      o.warmup, o.repeats);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace

ModelBenchResult run_model_bench(const ModelBenchOptions& options) {
  const int threads = configure_threads(options.threads);
  const std::vector<Case> cases = {
      {"infer", 2, 256, {"fp32", "torchscript", "bf16", "cl", "cl_bf16"}},
      {"infer", 2, 520, {"fp32", "torchscript"}},
      {"train", 4, 128, {"fp32", "torchscript", "bf16", "cl", "cl_bf16"}},
  };
  ModelBenchResult result;
  bool python = options.python;
  if (!python) result.python_note = "Python reference not run (--no-python)";
  if (python && !fs::exists(python_reference("model_bench.py"))) {
    python = false;
    result.python_note = "Python reference not found at " + python_reference("model_bench.py").string();
  }
  for (const Case& c : cases) {
    std::map<std::string, double> py;
    if (python) {
      const ProcessResult pr =
          run_process({reference_python(options.python_exe), python_reference("model_bench.py").string(), "--backbone", options.backbone,
                       "--case", c.kind, "--batch", std::to_string(c.batch), "--size", std::to_string(c.size),
                       "--variants", join(c.variants), "--threads", std::to_string(threads), "--warmup",
                       std::to_string(options.warmup), "--repeats", std::to_string(options.repeats)});
      if (pr.exit_code == 0) {
        const auto j = nlohmann::json::parse(pr.out.substr(pr.out.rfind('{')));
        for (const auto& [k, v] : j.items()) py[k] = v.get<double>();
      } else {
        python = false;
        result.python_note = pr.exit_code == 3
                                 ? "Python reference skipped: " + reference_python(options.python_exe) + " has no torch/torchvision (scripts/setup.sh installs them)"
                                 : "Python reference failed (exit code " + std::to_string(pr.exit_code) + ")";
      }
    }
    for (const std::string& v : c.variants) {
      ModelBenchRow row{c.name(), v, time_petseg(c, v, options), std::nullopt};
      if (py.count(v)) row.python_seconds = py[v];
      log_info("bench model: ", row.case_name, " ", v, ": petseg ", row.petseg_seconds, " s",
               row.python_seconds ? detail::str_cat(", python ", *row.python_seconds, " s") : "");
      result.rows.push_back(row);
    }
  }
  if (!options.json_out.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : result.rows) {
      nlohmann::json j = {{"case", r.case_name}, {"variant", r.variant}, {"petseg_seconds", r.petseg_seconds}};
      if (r.python_seconds) j["python_seconds"] = *r.python_seconds;
      rows.push_back(j);
    }
    const nlohmann::json doc = {{"benchmark", "model"},
                                {"backbone", options.backbone},
                                {"threads", threads},
                                {"repeats", options.repeats},
                                {"runtime", runtime_summary()},
                                {"rows", rows},
                                {"python_note", result.python_note}};
    if (options.json_out.has_parent_path()) fs::create_directories(options.json_out.parent_path());
    write_file_atomic(options.json_out, doc.dump(1) + "\n");
  }
  return result;
}

std::string format_model_bench(const ModelBenchResult& result, const ModelBenchOptions& options) {
  std::ostringstream os;
  os << "DeepLabV3-" << options.backbone << ", 3 classes, " << at::get_num_threads()
     << " threads, seconds per step (median of " << options.repeats << ")\n\n";
  os << std::left << std::setw(20) << "case" << std::setw(13) << "variant" << std::right << std::setw(10) << "petseg"
     << std::setw(10) << "python" << std::setw(16) << "petseg speed-up" << std::setw(16) << "vs petseg fp32"
     << "\n";
  std::map<std::string, double> fp32;
  for (const auto& r : result.rows) {
    if (r.variant == "fp32") fp32[r.case_name] = r.petseg_seconds;
  }
  os << std::fixed;
  for (const auto& r : result.rows) {
    os << std::left << std::setw(20) << r.case_name << std::setw(13) << r.variant << std::right << std::setw(10)
       << std::setprecision(3) << r.petseg_seconds;
    if (r.python_seconds) {
      os << std::setw(10) << *r.python_seconds << std::setw(15) << std::setprecision(2)
         << *r.python_seconds / r.petseg_seconds << "x";
    } else {
      os << std::setw(10) << "-" << std::setw(16) << "-";
    }
    os << std::setw(15) << std::setprecision(2) << fp32[r.case_name] / r.petseg_seconds << "x\n";
  }
  os << "\npetseg speed-up = python seconds / petseg seconds for the same variant (> 1: petseg faster)\n";
  if (!result.python_note.empty()) os << result.python_note << "\n";
  return os.str();
}

}  // namespace petseg::bench
