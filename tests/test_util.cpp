// Test helpers.
#include "test_util.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>

#include "bench/python_reference.h"
#include "core/check.h"
#include "core/fs.h"
#include "core/process.h"

namespace petseg::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() / ("petseg_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string python_with_torchvision() {
  static const std::string exe = [] {
    const std::string candidate = bench::reference_python();
    const auto r = run_process({candidate, "-c", "import torch, torchvision, PIL, numpy"});
    return r.exit_code == 0 ? candidate : std::string();
  }();
  return exe;
}

std::string run_python(const std::string& code) {
  const auto r = run_process({python_with_torchvision(), "-c", code});
  EXPECT_EQ(r.exit_code, 0) << "python failed:\n" << code;
  return r.out;
}

bool python_has_module(const std::string& module) {
  static std::map<std::string, bool> known;  // gtest runs a suite's tests on one thread
  const auto it = known.find(module);
  if (it != known.end()) return it->second;
  const std::string python = python_with_torchvision();
  // A module that imports as an empty namespace package (a folder hidden under an empty mount, as the GPU rehearsal
  // hides what the GPU machine lacks) counts as absent.
  const std::string probe = "import importlib, sys; sys.exit(0 if importlib.import_module(sys.argv[1]).__file__ else 1)";
  return known[module] = !python.empty() && run_process({python, "-c", probe, module}).exit_code == 0;
}

std::string run_python_script(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {python_with_torchvision(),
                                   std::string(PETSEG_SOURCE_DIR) + "/tests/python/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << "tests/python/" << script << " failed (its error is above)";
  return r.out;
}

bool have_tensorboard() {
  static const bool have = [] {
    const std::string python = python_with_torchvision();
    return !python.empty() &&
           run_process({python, "-c", "import tensorboard.backend.event_processing.event_accumulator"}).exit_code == 0;
  }();
  return have;
}

bool have_onnxruntime() {
  static const bool have = [] {
    const std::string python = python_with_torchvision();
    return !python.empty() && run_process({python, "-c", "import onnxruntime"}).exit_code == 0;
  }();
  return have;
}

std::string read_tensorboard(const fs::path& dir, const std::string& reader) {
  const std::string script = std::string(PETSEG_SOURCE_DIR) + "/tests/python/read_tensorboard.py";
  const ProcessResult r = run_process({python_with_torchvision(), script, dir.string(), reader});
  PETSEG_CHECK(r.exit_code == 0, script, " failed (exit ", r.exit_code, "; its error is above)");
  return r.out;
}

uint64_t file_hash(const fs::path& path) {
  const auto bytes = read_file(path);
  uint64_t h = 1469598103934665603ULL;
  for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ULL;
  return h;
}

uint64_t tree_hash(const fs::path& root) {
  std::map<std::string, uint64_t> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files[e.path().lexically_relative(root).string()] = file_hash(e.path());
  }
  uint64_t h = 0;
  for (const auto& [name, fh] : files) {
    for (char c : name) h = (h ^ uint8_t(c)) * 1099511628211ULL;
    h = (h ^ fh) * 1099511628211ULL;
  }
  return h;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace petseg::testing
