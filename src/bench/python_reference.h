// The Python reference of the tests and benchmarks (never petseg's run path): the interpreter (the pinned PyTorch
// environment found at configure time, -DPETSEG_PYTHON; $PETSEG_PYTHON overrides it at run time), the scripts it
// runs (bench/python/ in the source tree, or $PETSEG_PYTHON_BENCH_DIR when petseg runs away from its sources), and
// the one way every benchmark runs them.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

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

// A reference script run: `python script args...`, its standard error appended to `log` (a temporary file when
// empty), its result the JSON object on the last line of its standard output. When the interpreter lacks a module the
// script needs (torch, torchvision, onnxruntime: the scripts exit with 3, naming it on their last line of standard
// error) the result is empty and `skipped` says why, with that line; any other failure, or output that
// is not such a line, is an error naming the script, the exit code and the end of its log.
// With `stream`, every line of standard output that is a JSON object is handed on as it arrives (a script that
// reports row by row loses nothing when it is stopped later), and a script still running after `timeout_s` is
// stopped: then `timed_out` is set and what it reported so far stands, with no error.
struct ReferenceStream {
  std::function<void(const nlohmann::json&)> on_result;
  double timeout_s = 0;
};
struct ReferenceRun {
  std::optional<nlohmann::json> result;
  std::string skipped;
  bool timed_out = false;
};
ReferenceRun run_reference(const std::string& python_exe, const std::string& script,
                           const std::vector<std::string>& args, const std::filesystem::path& log = {},
                           const ReferenceStream& stream = {});

}  // namespace petseg::bench
