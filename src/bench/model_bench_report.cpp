// `petseg bench model`'s results: the JSON document rewritten after every row, the table, each case's targets.
#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/environment.h"
#include "bench/model_bench.h"
#include "bench/model_bench_plan.h"
#include "core/check.h"

namespace petseg::bench {
namespace {

using json = nlohmann::json;

std::optional<double> peak_for(const ModelBenchResult& r, const std::string& variant) {
  const std::string precision = parse_variant(variant).precision;
  return precision == "fp32" ? r.peak_fp32 : precision == "tf32" ? r.peak_tf32 : r.peak_half;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

// A row timed with libtorch's loop SGD beside a fused one is the "before" of that row: shown, compared with its
// fused row, and left out of the per-case bests.
const ModelBenchRow* fused_row_of(const ModelBenchResult& result, const ModelBenchRow& r) {
  if (r.optimizer != "loop") return nullptr;
  for (const auto& f : result.rows) {
    if (f.case_name == r.case_name && f.variant == r.variant && f.optimizer == "fused") return &f;
  }
  return nullptr;
}

// Each side's fastest row of a case (Python's torch.compile included), and what the case's summary reports.
struct CaseBests {
  const ModelBenchRow *petseg_best = nullptr, *python_best = nullptr, *ort_best = nullptr;
  const ModelBenchRow *petseg_fp32 = nullptr, *petseg_bf16 = nullptr;
  double worst_eager = 1e9;
  std::string worst_variant, fused_vs_loop;
};

CaseBests case_bests(const ModelBenchResult& result, const std::string& name) {
  CaseBests b;
  auto faster = [](const std::optional<double>& s, const ModelBenchRow* best,
                   std::optional<double> ModelBenchRow::*side) { return s && (!best || *s < *(best->*side)); };
  for (const auto& r : result.rows) {
    if (r.case_name != name) continue;
    if (const ModelBenchRow* fused = fused_row_of(result, r)) {
      if (r.petseg_seconds && fused->petseg_seconds) {
        b.fused_vs_loop += (b.fused_vs_loop.empty() ? "" : ", ") + r.variant + " " +
                           fixed(*r.petseg_seconds / *fused->petseg_seconds, 2) + "x";
      }
      continue;
    }
    if (faster(r.petseg_seconds, b.petseg_best, &ModelBenchRow::petseg_seconds)) b.petseg_best = &r;
    if (faster(r.python_seconds, b.python_best, &ModelBenchRow::python_seconds)) b.python_best = &r;
    if (faster(r.ort_seconds, b.ort_best, &ModelBenchRow::ort_seconds)) b.ort_best = &r;
    if (r.variant == "fp32") b.petseg_fp32 = &r;
    if (r.variant == "bf16") b.petseg_bf16 = &r;
    const Variant v = parse_variant(r.variant);
    if (v.mode == "eager" && !v.channels_last && r.petseg_seconds && r.python_seconds) {
      const double ratio = *r.python_seconds / *r.petseg_seconds;
      if (ratio < b.worst_eager) b.worst_eager = ratio, b.worst_variant = r.variant;
    }
  }
  return b;
}

std::vector<std::string> case_names(const ModelBenchResult& result) {
  std::vector<std::string> names;
  for (const auto& r : result.rows) {
    if (std::find(names.begin(), names.end(), r.case_name) == names.end()) names.push_back(r.case_name);
  }
  return names;
}

json best_json(const ModelBenchRow* row, std::optional<double> ModelBenchRow::*side) {
  if (!row) return nullptr;
  return {{"variant", row->variant}, {"seconds", *(row->*side)}, {"images_per_s", row->batch / *(row->*side)}};
}

// One case's bests, side against side (best against best: Python's torch.compile included).
json case_json(const ModelBenchResult& result, const std::string& name) {
  const CaseBests b = case_bests(result, name);
  json j = {{"case", name},
            {"petseg_best", best_json(b.petseg_best, &ModelBenchRow::petseg_seconds)},
            {"python_best", best_json(b.python_best, &ModelBenchRow::python_seconds)},
            {"ort_best", best_json(b.ort_best, &ModelBenchRow::ort_seconds)}};
  if (b.petseg_best && b.python_best) {
    j["petseg_over_python"] = *b.python_best->python_seconds / *b.petseg_best->petseg_seconds;
  }
  if (b.petseg_best && b.ort_best) j["petseg_over_ort"] = *b.ort_best->ort_seconds / *b.petseg_best->petseg_seconds;
  return j;
}

json row_json(const ModelBenchResult& result, const ModelBenchRow& r) {
  json j = {{"case", r.case_name}, {"kind", r.kind},       {"batch", r.batch},
            {"size", r.size},      {"variant", r.variant}, {"flops_per_image", r.flops_per_image}};
  if (!r.optimizer.empty()) j["optimizer"] = r.optimizer;
  const auto peak = peak_for(result, r.variant);
  for (const auto& [side, seconds, warmup] : {std::tuple{"petseg", r.petseg_seconds, r.petseg_warmup_seconds},
                                              std::tuple{"python", r.python_seconds, r.python_warmup_seconds},
                                              std::tuple{"ort", r.ort_seconds, r.ort_warmup_seconds}}) {
    const std::string s = side;
    if (warmup) j[s + "_warmup_seconds"] = *warmup;
    if (!seconds) continue;
    const double rate = r.batch / *seconds;
    j[s + "_seconds"] = *seconds;
    j[s + "_images_per_s"] = rate;
    j[s + "_tflops"] = rate * r.flops_per_image / 1e12;
    if (peak) j[s + "_mfu"] = rate * r.flops_per_image / *peak;
    if (result.ceilings) j[s + "_mfu_measured"] = rate * r.flops_per_image / result.ceilings->matmul_bf16_flops;
  }
  if (r.petseg_seconds && r.python_seconds) j["petseg_over_python"] = *r.python_seconds / *r.petseg_seconds;
  if (r.python_first_step_seconds) j["python_first_step_seconds"] = *r.python_first_step_seconds;
  if (r.ort_session_seconds) j["ort_session_seconds"] = *r.ort_session_seconds;
  // Which variant is each side's best in this row's case (null where the side has no measured row yet).
  const CaseBests b = case_bests(result, r.case_name);
  j["case_best"] = {{"petseg", b.petseg_best ? json(b.petseg_best->variant) : json(nullptr)},
                    {"python", b.python_best ? json(b.python_best->variant) : json(nullptr)},
                    {"ort", b.ort_best ? json(b.ort_best->variant) : json(nullptr)}};
  if (!r.note.empty()) j["note"] = r.note;
  return j;
}

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

std::string model_bench_json(const ModelBenchResult& result) {
  json rows = json::array();
  for (const auto& r : result.rows) rows.push_back(row_json(result, r));
  json cases = json::array();
  for (const std::string& name : case_names(result)) cases.push_back(case_json(result, name));
  json ceilings = nullptr;
  if (result.ceilings) {
    ceilings = {{"matmul_bf16_flops", result.ceilings->matmul_bf16_flops},
                {"copy_bytes_per_s", result.ceilings->copy_bytes_per_s}};
  }
  const json doc = {
      {"benchmark", "model"},
      {"model", result.model},
      {"device", result.device},
      {"complete", result.complete},
      {"threads", result.threads},
      {"warmup", result.warmup},
      {"repeats", result.repeats},
      // Both sides ran with these: cuDNN's benchmark mode as set here; TF32 off for the fp32 variants and on for the
      // others (convolutions and matmuls), as each side sets it per variant.
      {"cudnn_benchmark", result.cudnn_benchmark},
      {"tf32", "off for fp32 variants, on for every other precision (both sides)"},
      {"environment", json::parse(result.environment)},
      {"peak_flops",
       {{"source", "data sheet, dense"},
        {"fp32", optional_json(result.peak_fp32)},
        {"tf32", optional_json(result.peak_tf32)},
        {"bf16_fp16", optional_json(result.peak_half)}}},
      {"ceilings", ceilings},
      // Each side's rows: petseg (eager, TorchScript, folded: BatchNorm folded into the convolutions, model/fold.h;
      // fused: also activations and residual sums fused into oneDNN's convolutions, model/fused_program.h),
      // Python (torchvision eager, TorchScript, torch.compile with freeze = Inductor's freezing), ONNX Runtime.
      {"onnxruntime",
       {{"version", result.onnxruntime_version.empty() ? json(nullptr) : json(result.onnxruntime_version)},
        {"provider", result.device == "cuda" ? "CUDAExecutionProvider" : "CPUExecutionProvider"},
        {"model",
         "petseg's model of the petseg rows (same seed), exported by petseg (model::export_onnx: opset 17, "
         "BatchNorm folded, the case's input shape fixed); the same threads, warm-up and repeats"}}},
      {"variant_grammar",
       "[torchscript_|compile_[freeze_]|folded_|fused_|ort_][cl_](fp32|tf32|bf16|fp16|bf16w|fp16w); bf16/fp16 = "
       "autocast (weights fp32), bf16w/fp16w = weights and input cast"},
      {"rows", rows},
      {"cases", cases},
      {"python_note", result.python_note}};
  return doc.dump(1) + "\n";
}

Ceilings read_ceilings(const std::filesystem::path& file) {
  std::ifstream in(file);
  PETSEG_CHECK(in.good(), "bench model: --ceilings ", file.string(), " cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  Ceilings c;
  try {
    const json j = json::parse(text.str());
    c.matmul_bf16_flops = j.at("matmul_bf16_tflops").get<double>() * 1e12;
    c.copy_bytes_per_s = j.at("copy_gbps").get<double>() * 1e9;
  } catch (const std::exception& e) {
    PETSEG_FAIL("bench model: --ceilings ", file.string(),
                " is not a JSON object with numbers matmul_bf16_tflops and copy_gbps: ", e.what());
  }
  PETSEG_CHECK(c.matmul_bf16_flops > 0 && c.copy_bytes_per_s > 0, "bench model: --ceilings ", file.string(),
               ": matmul_bf16_tflops and copy_gbps must be > 0");
  return c;
}

namespace {

constexpr int kVariantWidth = 24;  // "compile_freeze_cl_bf16w" and a space

// Seconds and images/s of one side; "*" marks the side's best in the case.
void format_side(std::ostream& os, const ModelBenchRow& r, const std::optional<double>& s, bool best) {
  os << std::setw(9) << (s ? fixed(*s, 3) + (best ? "*" : " ") : "- ") << std::setw(8)
     << (s ? fixed(r.batch / *s, 1) : "-");
}

void format_row(std::ostream& os, const ModelBenchResult& result, const ModelBenchRow& r,
                const std::map<std::string, double>& fp32, bool ort_column) {
  const CaseBests b = case_bests(result, r.case_name);
  os << std::left << std::setw(19) << r.case_name << std::setw(kVariantWidth)
     << (r.variant + (r.optimizer == "loop" ? " loop-sgd" : "")) << std::right;
  format_side(os, r, r.petseg_seconds, b.petseg_best == &r);
  format_side(os, r, r.python_seconds, b.python_best == &r);
  if (ort_column) format_side(os, r, r.ort_seconds, b.ort_best == &r);
  const auto base = fp32.find(r.case_name);
  os << std::setw(11)
     << (r.petseg_seconds && r.python_seconds ? fixed(*r.python_seconds / *r.petseg_seconds, 2) + "x" : "-")
     << std::setw(11)
     << (r.petseg_seconds && base != fp32.end() ? fixed(base->second / *r.petseg_seconds, 2) + "x" : "-");
  const auto best = r.petseg_seconds ? r.petseg_seconds : r.python_seconds ? r.python_seconds : r.ort_seconds;
  os << std::setw(10) << (best ? fixed(r.batch * r.flops_per_image / *best / 1e12, 2) : "-");
  if (const auto peak = peak_for(result, r.variant)) {
    auto pct = [&](const std::optional<double>& s) {
      return s ? fixed(100 * r.batch * r.flops_per_image / *s / *peak, 1) + "%" : std::string("-");
    };
    os << std::setw(10) << pct(r.petseg_seconds) << " /" << std::setw(7) << pct(r.python_seconds);
  }
  if (parse_variant(r.variant).compiled() && r.python_first_step_seconds && r.python_seconds) {
    os << "  (compilation: first step " << fixed(*r.python_first_step_seconds, 1) << " s)";
  }
  if (!r.note.empty()) os << "  " << r.note;
  os << "\n";
}

// One case's targets, measured, met or not.
void format_case_summary(std::ostream& os, const ModelBenchResult& result, const std::string& name) {
  const CaseBests b = case_bests(result, name);
  os << name << ":\n";
  if (b.worst_variant.size()) {
    os << "  petseg eager vs Python eager, lowest over the precisions: " << fixed(b.worst_eager, 2) << "x ("
       << b.worst_variant << ") -> " << (b.worst_eager >= 0.97 ? "met" : "NOT met") << " (target >= 0.97x)\n";
  }
  auto best = [](const char* side, const ModelBenchRow* r, std::optional<double> ModelBenchRow::*seconds) {
    return std::string(side) + " " + (r ? r->variant + " " + fixed(*(r->*seconds), 3) + " s" : std::string("-"));
  };
  if (b.petseg_best || b.python_best || b.ort_best) {
    os << "  best: " << best("petseg", b.petseg_best, &ModelBenchRow::petseg_seconds) << " | "
       << best("Python", b.python_best, &ModelBenchRow::python_seconds);
    if (b.ort_best) os << " | " << best("ONNX Runtime", b.ort_best, &ModelBenchRow::ort_seconds);
    os << "\n";
  }
  if (b.petseg_best && b.python_best) {
    const double ratio = *b.python_best->python_seconds / *b.petseg_best->petseg_seconds;
    os << "  petseg best vs Python best (torch.compile included): " << fixed(ratio, 2) << "x -> "
       << (ratio >= 1.0 ? "met" : "NOT met") << " (target >= 1.0x)\n";
  }
  if (b.petseg_best && b.ort_best) {
    os << "  petseg best vs ONNX Runtime: " << fixed(*b.ort_best->ort_seconds / *b.petseg_best->petseg_seconds, 2)
       << "x\n";
  }
  if (b.petseg_fp32 && b.petseg_bf16 && b.petseg_fp32->petseg_seconds && b.petseg_bf16->petseg_seconds) {
    os << "  petseg bf16 autocast vs fp32: "
       << fixed(*b.petseg_fp32->petseg_seconds / *b.petseg_bf16->petseg_seconds, 2) << "x\n";
  }
  if (!b.fused_vs_loop.empty()) {
    os << "  petseg train step, fused SGD vs libtorch's loop (loop seconds / fused seconds): " << b.fused_vs_loop
       << "\n";
  }
}

}  // namespace

std::string format_model_bench(const ModelBenchResult& result) {
  const json environment = json::parse(result.environment);
  const bool mfu = result.peak_fp32.has_value();
  std::ostringstream os;
  os << result.model << ", 3 classes, on " << result.device << "; " << environment_line(environment) << "\n"
     << "seconds per step (median of " << result.repeats << " after " << result.warmup
     << " warm-up), images/s; train FLOPs = 3 x forward" << (mfu ? "; MFU = FLOP/s / dense peak" : "")
     << (result.device == "cuda" ? std::string("; cuDNN benchmark ") + (result.cudnn_benchmark ? "on" : "off") : "")
     << "\n\n";
  const bool ort_column = std::any_of(result.rows.begin(), result.rows.end(),
                                      [](const ModelBenchRow& r) { return parse_variant(r.variant).onnx_runtime(); });
  os << std::left << std::setw(19) << "case" << std::setw(kVariantWidth) << "variant" << std::right << std::setw(9)
     << "petseg" << std::setw(8) << "img/s" << std::setw(9) << "python" << std::setw(8) << "img/s";
  if (ort_column) os << std::setw(9) << "onnxrt" << std::setw(8) << "img/s";
  os << std::setw(11) << "petseg/py" << std::setw(11) << "vs fp32" << std::setw(10) << "TFLOP/s"
     << (mfu ? "   MFU petseg/python" : "") << "\n";
  std::map<std::string, double> fp32;
  for (const auto& r : result.rows) {
    if (r.variant == "fp32" && r.petseg_seconds && !fused_row_of(result, r)) fp32[r.case_name] = *r.petseg_seconds;
  }
  for (const auto& r : result.rows) format_row(os, result, r, fp32, ort_column);
  os << "\npetseg/py = Python seconds / petseg seconds for the same variant (> 1: petseg faster); * = the side's "
        "best in its case\n"
     << "folded = petseg's model with BatchNorm folded into the convolutions; fused = folded, with activations and "
        "residual sums fused into oneDNN's convolutions (eval and predict's CPU model); compile_freeze = torch.compile "
        "with Inductor's freezing; bf16 = autocast, bf16w = bf16 weights; ort = ONNX Runtime on petseg's ONNX export"
     << (result.onnxruntime_version.empty() ? "" : " (onnxruntime " + result.onnxruntime_version + ")") << "\n";
  if (std::any_of(result.rows.begin(), result.rows.end(), [](const auto& r) { return r.optimizer == "loop"; })) {
    os << "loop-sgd = petseg's train step with libtorch's per-parameter SGD in place of the fused one\n";
  }
  for (const std::string& name : case_names(result)) format_case_summary(os, result, name);
  if (!result.python_note.empty()) os << result.python_note << "\n";
  return os.str();
}

}  // namespace petseg::bench
