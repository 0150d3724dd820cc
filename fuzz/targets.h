// The fuzzed entry points, shared by the libFuzzer binaries (fuzz_main.cpp, clang builds) and by the regression test
// that replays every seed and every input that ever crashed (tests/fuzz/test_fuzz_regressions.cpp, all builds).
// Each takes arbitrary bytes; a petseg::Error is the expected way to refuse them, anything else (a crash, another
// exception, a sanitizer report, a hang, unbounded memory) is a bug.
#pragma once

#include <cstddef>
#include <cstdint>

namespace petseg::fuzz {

void weights(const uint8_t* data, size_t size);     // torch.save zip and legacy pickle reader
void image(const uint8_t* data, size_t size);       // image decode + trimap decode and validation
void checkpoint(const uint8_t* data, size_t size);  // checkpoint info and full load into a small model
void manifest(const uint8_t* data, size_t size);    // petseg_manifest.json reader
void archive(const uint8_t* data, size_t size);     // safe extraction of downloaded archives (tar, gzip'd or not)

// Writes a real checkpoint of the small model `checkpoint` loads into: the seed of its corpus.
void write_checkpoint_seed(const char* path);

}  // namespace petseg::fuzz
