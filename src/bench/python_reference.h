// The Python reference of the tests and benchmarks: the interpreter (the pinned PyTorch environment found at
// configure time, -DPETSEG_PYTHON; $PETSEG_PYTHON overrides it at run time) and the scripts it runs (bench/python/
// in the source tree, or $PETSEG_PYTHON_BENCH_DIR when petseg runs away from its sources). Never petseg's run path.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace petseg::bench {

// `chosen` (a --python option) when given.
inline std::string reference_python(const std::string& chosen = "") {
  if (!chosen.empty()) return chosen;
  if (const char* env = std::getenv("PETSEG_PYTHON"); env && *env) return env;
  return PETSEG_REFERENCE_PYTHON;
}

inline std::filesystem::path python_reference(const std::string& script) {
  if (const char* env = std::getenv("PETSEG_PYTHON_BENCH_DIR")) return std::filesystem::path(env) / script;
  return std::filesystem::path(PETSEG_SOURCE_DIR) / "bench" / "python" / script;
}

}  // namespace petseg::bench
