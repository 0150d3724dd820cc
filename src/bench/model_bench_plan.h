// What `petseg bench model` measures, parsed from its options: the cases (train or infer, batch, size) and their
// variants ([torchscript_|compile_][cl_](fp32|tf32|bf16|fp16)), and petseg's SGDs for the train steps.
#pragma once

#include <string>
#include <vector>

#include "bench/model_bench.h"

namespace petseg::bench {

struct Variant {
  std::string mode = "eager";  // eager | torchscript | compile (Python only)
  bool channels_last = false;
  std::string precision = "fp32";
  // Named canonically ("cl" for channels_last fp32).
  std::string name() const;
  bool compiled() const { return mode == "compile"; }
};
Variant parse_variant(const std::string& text);

struct Case {
  std::string kind;  // infer | train
  int batch = 0, size = 0;
  std::vector<std::string> variants;
  std::string name() const;  // "train b8 520x520"
};

// The device's default cases, narrowed by --cases and --variants; torch.compile variants dropped without Python or
// with --no-compile.
std::vector<Case> chosen_cases(const ModelBenchOptions& options, bool cuda);
// --optimizer-impl: which SGDs the train steps are timed with, each once.
std::vector<std::string> optimizer_impls(const ModelBenchOptions& options);

std::vector<std::string> split(const std::string& s, char sep);
std::string join(const std::vector<std::string>& v, const std::string& sep = ",");

}  // namespace petseg::bench
