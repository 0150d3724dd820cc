// The prepare step (the original project's, done without deleting anything): every pair checked, stray files found,
// the JSON manifest written, rejected files optionally set aside in DIR/quarantine/ and restored from there.
#pragma once

#include <filesystem>
#include <string>

#include "data/oxford_pets.h"

namespace petseg::data {

void write_manifest(const fs::path& path, const Manifest& manifest);

struct PrepareOptions {
  bool quarantine = false;  // MOVE rejected files into DIR/quarantine/ (never delete)
  int threads = 0;          // 0: one per core
};

// Checks every pair named by the split files and every image in no split, finds stray files, writes
// DIR/petseg_manifest.json (atomically) and, with quarantine, moves rejected files aside.
Manifest prepare_dataset(const fs::path& root, const PrepareOptions& options);
std::string format_prepare_summary(const Manifest& manifest, const fs::path& root);
// Moves every quarantined file back where it came from (skipping any whose place is taken); returns the count.
int restore_quarantine(const fs::path& root);

}  // namespace petseg::data
