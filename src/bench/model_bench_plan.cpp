// The cases and variants of `petseg bench model`, from its options and the device's defaults.
#include "bench/model_bench_plan.h"

#include <algorithm>
#include <sstream>

#include "core/check.h"

namespace petseg::bench {

std::string Variant::name() const {
  std::string n = mode == "eager" ? "" : mode;
  auto add = [&n](const std::string& token) { n += (n.empty() ? "" : "_") + token; };
  if (freeze) add("freeze");
  if (channels_last) add("cl");
  if (precision != "fp32" || n.empty()) add(precision);
  return n;
}

Variant parse_variant(const std::string& text) {
  const std::string grammar =
      "; a variant is [torchscript_|compile_[freeze_]|folded_|fused_|ort_][cl_](fp32|tf32|bf16|fp16|bf16w|fp16w), "
      "e.g. cl_bf16, fused_cl_bf16w, compile_freeze_cl_bf16, ort";
  Variant v;
  bool has_mode = false, has_precision = false;
  std::istringstream in(text);
  for (std::string token; std::getline(in, token, '_');) {
    if (token == "torchscript" || token == "compile" || token == "folded" || token == "fused" || token == "ort") {
      PETSEG_CHECK(!has_mode, "bench model: variant \"", text, "\" names two modes (", v.mode, ", ", token, ")",
                   grammar);
      v.mode = token, has_mode = true;
    } else if (token == "freeze") {
      v.freeze = true;
    } else if (token == "cl") {
      v.channels_last = true;
    } else if (token == "fp32" || token == "tf32" || token == "bf16" || token == "fp16" || token == "bf16w" ||
               token == "fp16w") {
      PETSEG_CHECK(!has_precision, "bench model: variant \"", text, "\" names two precisions (", v.precision, ", ",
                   token, ")", grammar);
      v.precision = token, has_precision = true;
    } else {
      PETSEG_FAIL("bench model: unknown variant \"", text, "\" (token \"", token, "\")", grammar);
    }
  }
  PETSEG_CHECK(!v.freeze || v.compiled(), "bench model: variant \"", text,
               "\": freeze is Inductor's freezing, a mode of torch.compile (compile_freeze...)");
  PETSEG_CHECK(v.mode != "torchscript" || v.precision == "fp32" || v.precision == "tf32",
               "bench model: TorchScript variants run in fp32 or tf32, not ", v.precision);
  PETSEG_CHECK(!v.onnx_runtime() || (!v.channels_last && (v.precision == "fp32" || v.precision == "fp16w")),
               "bench model: variant \"", text,
               "\": ONNX Runtime runs petseg's ONNX export in fp32 (ort) or with float16 weights (ort_fp16w), "
               "NCHW only");
  PETSEG_CHECK(v.mode != "fused" || v.precision == "fp32" || v.precision == "bf16w", "bench model: variant \"", text,
               "\": fused is petseg's CPU inference model, in fp32 or bf16 weights (fused, fused_cl, fused_bf16w, "
               "fused_cl_bf16w)");
  return v;
}

std::string Case::name() const {
  return kind + " b" + std::to_string(batch) + " " + std::to_string(size) + "x" + std::to_string(size);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, sep);) {
    if (!x.empty()) out.push_back(x);
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

namespace {

// What each device measures by default: the original's sizes where the machine can afford them, every precision
// the device has, channels_last, TorchScript, petseg's folded model (on the CPU also its fused one, what eval and
// predict run there), ONNX Runtime on the CPU, and Python's torch.compile with and without Inductor's freezing.
std::vector<Case> default_cases(bool cuda, bool compile) {
  auto with = [&](std::vector<std::string> v, const std::vector<std::string>& compiled) {
    if (compile) v.insert(v.end(), compiled.begin(), compiled.end());
    return v;
  };
  if (cuda) {
    return {{"train", 8, 520,
             with({"fp32", "tf32", "bf16", "fp16", "cl_bf16", "cl_fp16"}, {"compile_bf16", "compile_cl_bf16"})},
            {"infer", 8, 520,
             with({"fp32", "tf32", "bf16", "torchscript", "cl_bf16", "folded_bf16w", "folded_cl_bf16w"},
                  {"compile_cl_bf16", "compile_freeze_cl_bf16"})}};
  }
  return {
      {"infer", 2, 256,
       with({"fp32", "torchscript", "bf16", "cl", "cl_bf16", "folded", "fused", "fused_bf16w", "fused_cl_bf16w", "ort"},
            {"compile", "compile_cl_bf16", "compile_freeze", "compile_freeze_cl_bf16"})},
      {"infer", 2, 520, {"fp32", "torchscript", "fused", "fused_cl_bf16w", "ort"}},
      {"train", 4, 128,
       with({"fp32", "torchscript", "bf16", "cl", "cl_bf16"}, {"compile", "compile_cl", "compile_cl_bf16"})}};
}

Case parse_case(const std::string& spec, const std::vector<Case>& defaults) {
  const auto parts = split(spec, ':');
  PETSEG_CHECK(parts.size() == 3 && (parts[0] == "train" || parts[0] == "infer"), "bench model: --cases \"", spec,
               "\" is not KIND:BATCH:SIZE with KIND train or infer (e.g. train:8:520)");
  Case c{parts[0], 0, 0, {}};
  try {
    c.batch = std::stoi(parts[1]);
    c.size = std::stoi(parts[2]);
  } catch (const std::exception&) {
    PETSEG_FAIL("bench model: --cases \"", spec, "\": BATCH and SIZE must be numbers");
  }
  PETSEG_CHECK(c.batch >= 1 && c.size >= 32, "bench model: --cases \"", spec, "\" needs batch >= 1, size >= 32");
  for (const Case& d : defaults) {
    if (d.kind == c.kind && c.variants.empty()) c.variants = d.variants;
  }
  return c;
}

}  // namespace

std::vector<Case> chosen_cases(const ModelBenchOptions& o, bool cuda) {
  std::vector<Case> cases = default_cases(cuda, o.compile && o.python);
  if (!o.cases.empty()) {
    std::vector<Case> asked;
    for (const std::string& spec : split(o.cases, ',')) asked.push_back(parse_case(spec, cases));
    cases = asked;
  }
  if (!o.variants.empty()) {
    for (Case& c : cases) c.variants = split(o.variants, ',');
  }
  for (Case& c : cases) {
    std::vector<std::string> kept;
    size_t inference_only = 0;
    for (const std::string& text : c.variants) {
      const Variant v = parse_variant(text);
      PETSEG_CHECK(!cuda || v.mode != "fused", "bench model: variant \"", text,
                   "\": fused is the CPU's inference model; on CUDA the folded rows run eval and predict's model");
      // One --variants list serves every case: what only an eval forward can run is left out of train cases.
      if (c.kind == "train" && v.inference_only()) {
        ++inference_only;
        continue;
      }
      if (v.compiled() && (!o.python || !o.compile)) continue;
      if (v.onnx_runtime() && !o.python) continue;  // onnxruntime runs in the Python reference's interpreter
      if (std::find(kept.begin(), kept.end(), v.name()) == kept.end()) kept.push_back(v.name());
    }
    PETSEG_CHECK(inference_only == 0 || inference_only < c.variants.size(), "bench model: no variant of \"",
                 join(c.variants), "\" applies to ", c.name(),
                 " (folded, fused, compile_freeze, bf16w, fp16w and ort are for inference only)");
    c.variants = kept;
  }
  cases.erase(std::remove_if(cases.begin(), cases.end(), [](const Case& c) { return c.variants.empty(); }),
              cases.end());
  return cases;
}

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

}  // namespace petseg::bench
