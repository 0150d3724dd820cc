// Replays every fuzz seed (fuzz/corpus/<target>/) and every input that once crashed a fuzzer
// (fuzz/regressions/<target>/) through the same entry points, in every build (sanitized ones included): each must
// be refused with a petseg::Error or accepted, never crash.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>

#include "core/device.h"
#include "core/fs.h"
#include "targets.h"

namespace petseg::fuzz {
namespace {

namespace fs = std::filesystem;

class FuzzRegressions : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzRegressions, EveryKeptInputIsHandled) {
  configure_threads(1);
  static const std::map<std::string, std::function<void(const uint8_t*, size_t)>> kTargets = {
      {"weights", weights}, {"image", image}, {"checkpoint", checkpoint}, {"manifest", manifest}, {"archive", archive}};
  const auto& fn = kTargets.at(GetParam());
  int inputs = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(PETSEG_SOURCE_DIR) / "fuzz" / kind / GetParam();
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      SCOPED_TRACE(entry.path().string());
      const std::vector<uint8_t> bytes = read_file(entry.path());
      fn(bytes.data(), bytes.size());
      ++inputs;
    }
  }
  EXPECT_GT(inputs, 0) << "no seed corpus for " << GetParam();
}

// scripts/fuzz.sh --make-corpus runs this to (re)write the checkpoint seed; a plain test run skips it.
TEST(FuzzSeeds, WriteCheckpointSeed) {
  const char* dir = std::getenv("PETSEG_WRITE_FUZZ_SEEDS");
  if (!dir) GTEST_SKIP() << "set PETSEG_WRITE_FUZZ_SEEDS=DIR to write the checkpoint seed";
  fs::create_directories(fs::path(dir) / "checkpoint");
  write_checkpoint_seed((fs::path(dir) / "checkpoint" / "small_sgd.pt").c_str());
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzRegressions,
                         ::testing::Values("weights", "image", "checkpoint", "manifest", "archive"));

}  // namespace
}  // namespace petseg::fuzz
