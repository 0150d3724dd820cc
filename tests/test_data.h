// Synthetic data sets the tests share. gtest_discover_tests runs every test in a process of its own, so a fixture's
// SetUpTestSuite would make its data again in each: here each set is made once per build (synthesized, and prepared
// when asked) in the build folder, and afterwards only read.
#pragma once

#include <filesystem>

#include "data/prepare.h"
#include "data/synth.h"

namespace petseg::testing {

// The data set `options` describes (its `out` is ignored), made on first use under the build's test-data cache and
// shared by every test process that asks for the same one (a lock serializes the first making). `prepared`: with
// petseg_manifest.json, as `petseg prepare` writes it (an RGB-mask folders set with its colours file). Tests must not
// change it: copy it first (a TempDir) to break files.
std::filesystem::path shared_synthetic_set(data::SynthOptions options, bool prepared = true);

}  // namespace petseg::testing
