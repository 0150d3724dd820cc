// What `petseg bench model` measures, parsed from its options: the cases (train or infer, batch, size) and their
// variants, and petseg's SGDs for the train steps. A variant is
//   [torchscript_|compile_[freeze_]|folded_|fused_|ort_][cl_](fp32|tf32|bf16|fp16|bf16w|fp16w)
// and says which side runs it: petseg and Python both (eager, torchscript), Python only (compile), petseg only
// (folded, fused), ONNX Runtime only (ort: petseg's model exported to ONNX, run by onnxruntime in Python).
#pragma once

#include <string>
#include <vector>

#include "bench/model_bench.h"

namespace petseg::bench {

struct Variant {
  // eager | torchscript | compile (Python's torch.compile) | folded (petseg: BatchNorm folded into the convolutions,
  // model/fold.h) | fused (petseg: folded, and activations and residual sums fused into oneDNN's convolutions,
  // model/fused_program.h; the CPU's inference model) | ort (ONNX Runtime on petseg's ONNX export)
  std::string mode = "eager";
  bool freeze = false;  // compile only: Inductor's freezing (BatchNorm folded, weights constant); inference only
  bool channels_last = false;
  // fp32, tf32 (fp32 with TF32 math); bf16, fp16: autocast, the weights stay fp32; bf16w, fp16w: the weights and
  // activations cast to that type (inference only)
  std::string precision = "fp32";
  // Named canonically ("cl" for channels_last fp32, "compile_freeze_cl_bf16").
  std::string name() const;
  bool compiled() const { return mode == "compile"; }
  bool onnx_runtime() const { return mode == "ort"; }
  bool runs_in_petseg() const {
    return mode == "eager" || mode == "torchscript" || mode == "folded" || mode == "fused";
  }
  bool runs_in_python() const { return mode == "eager" || mode == "torchscript" || mode == "compile"; }
  bool autocast() const { return precision == "bf16" || precision == "fp16"; }
  bool cast_weights() const { return precision == "bf16w" || precision == "fp16w"; }
  // Only an eval forward means anything for it (a train step of it is refused).
  bool inference_only() const {
    return freeze || mode == "folded" || mode == "fused" || mode == "ort" || cast_weights();
  }
};
Variant parse_variant(const std::string& text);

struct Case {
  std::string kind;  // infer | train
  int batch = 0, size = 0;
  std::vector<std::string> variants;
  std::string name() const;  // "train b8 520x520"
};

// The device's default cases, narrowed by --cases and --variants; torch.compile variants dropped without Python or
// with --no-compile, ONNX Runtime's without Python; inference-only variants refused in a train case.
std::vector<Case> chosen_cases(const ModelBenchOptions& options, bool cuda);
// --optimizer-impl: which SGDs the train steps are timed with, each once.
std::vector<std::string> optimizer_impls(const ModelBenchOptions& options);

std::vector<std::string> split(const std::string& s, char sep);
std::string join(const std::vector<std::string>& v, const std::string& sep = ",");

}  // namespace petseg::bench
