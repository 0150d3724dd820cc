// Test helpers: temporary folders, the Python reference (skipped with a message when absent), file hashes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace petseg::testing {

// A fresh folder under the system temp folder, removed (with everything the test wrote) at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The reference interpreter (the pinned PyTorch environment, bench/python_reference.h) when it has torch,
// torchvision, PIL and numpy; empty otherwise.
std::string python_with_torchvision();
// Runs a Python snippet with the reference interpreter; returns its stdout, fails the test on a non-zero exit.
std::string run_python(const std::string& code);

// Whether the reference interpreter imports `module`: the references of the losses and metrics tests
// (segmentation_models_pytorch, torchmetrics), which scripts/setup.sh installs at pinned versions and the GPU
// machine's Python lacks.
bool python_has_module(const std::string& module);
// Runs tests/python/`script` with `args` in the reference interpreter; returns its stdout, fails the test on a
// non-zero exit.
std::string run_python_script(const std::string& script, const std::vector<std::string>& args);

// The message of the petseg::Error `f` throws; "no error" when it throws none.
std::string error_of(const std::function<void()>& f);

// Whether the reference interpreter has tensorboard (scripts/setup.sh installs it).
bool have_tensorboard();
// What TensorBoard's own Python readers see in `dir`, as JSON text (tests/python/read_tensorboard.py): reader
// "legacy" is event_accumulator.EventAccumulator, "plugin" the TensorBoard server's plugin_event_accumulator.
std::string read_tensorboard(const std::filesystem::path& dir, const std::string& reader = "legacy");

// Whether the reference interpreter has onnxruntime (scripts/setup.sh installs the pinned version).
bool have_onnxruntime();

uint64_t file_hash(const std::filesystem::path& path);
// Hash of every regular file under `root` (relative path + contents), for "nothing was lost" checks.
uint64_t tree_hash(const std::filesystem::path& root);

}  // namespace petseg::testing

// A test that reads event files back with tensorboard: setup installs it, so a missing one fails, except where
// PETSEG_TESTS_WITHOUT_TENSORBOARD=1 says that the interpreter cannot have it (the GPU machine's: no network there).
#define PETSEG_REQUIRE_TENSORBOARD()                                                                         \
  do {                                                                                                       \
    if (!::petseg::testing::have_tensorboard()) {                                                            \
      if (std::getenv("PETSEG_TESTS_WITHOUT_TENSORBOARD"))                                                   \
        GTEST_SKIP() << "no tensorboard in this Python (PETSEG_TESTS_WITHOUT_TENSORBOARD): not read back";   \
      FAIL() << "no tensorboard in the reference Python: scripts/setup.sh installs the pinned version";      \
    }                                                                                                        \
  } while (0)

// Skips the current test, with the reason, when the reference Python cannot run ONNX files.
#define PETSEG_REQUIRE_ONNXRUNTIME()                                                                          \
  do {                                                                                                        \
    if (::petseg::testing::python_with_torchvision().empty() || !::petseg::testing::have_onnxruntime())       \
      GTEST_SKIP() << "no onnxruntime in the reference Python (scripts/setup.sh installs the pinned one): "     \
                      "ONNX files not run";                                                                   \
  } while (0)

// Skips the current test, with the reason, when the Python reference is missing.
#define PETSEG_REQUIRE_PYTHON()                                                                               \
  do {                                                                                                        \
    if (::petseg::testing::python_with_torchvision().empty())                                                 \
      GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup.sh installs it): reference check "     \
                      "not run";                                                                              \
  } while (0)

// Skips the current test, with the reason, when the Python reference or its module `module` is missing.
#define PETSEG_REQUIRE_PYTHON_MODULE(module)                                                                 \
  do {                                                                                                       \
    PETSEG_REQUIRE_PYTHON();                                                                                 \
    if (!::petseg::testing::python_has_module(module))                                                       \
      GTEST_SKIP() << "no " << (module) << " in the reference Python (scripts/setup.sh installs the pinned " \
                   << "version): reference check not run";                                                   \
  } while (0)
