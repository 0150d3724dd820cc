// Where the Python reference scripts of the benchmarks live: bench/python/ in the source tree, or
// $PETSEG_PYTHON_BENCH_DIR when petseg runs away from its sources.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace petseg::bench {

inline std::filesystem::path python_reference(const std::string& script) {
  if (const char* env = std::getenv("PETSEG_PYTHON_BENCH_DIR")) return std::filesystem::path(env) / script;
  return std::filesystem::path(PETSEG_SOURCE_DIR) / "bench" / "python" / script;
}

}  // namespace petseg::bench
