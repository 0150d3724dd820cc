// The prepare step (the original project's, done without deleting anything), for every layout (data/layout.h): every
// pair checked, stray files found, the classes counted where nothing names them, the JSON manifest written,
// rejected files optionally set aside in DIR/quarantine/ and restored from there.
#pragma once

#include <filesystem>
#include <string>

#include "data/dataset.h"
#include "data/oxford_pets.h"

namespace petseg::data {

struct PrepareOptions {
  bool quarantine = false;               // MOVE rejected files into DIR/quarantine/ (never delete)
  int threads = 0;                       // 0: one per core
  std::string layout = kAutoLayout;      // layout_choices(); "auto" keeps the layout of an earlier manifest
  std::filesystem::path class_colors{};  // folders with RGB masks ("auto" keeps an earlier manifest's)
};

// Checks every pair the layout names (in a split or not), finds stray files, counts the classes where neither
// classes.txt nor a colours file names them, writes DIR/petseg_manifest.json (atomically) and, with quarantine,
// moves rejected files aside.
Manifest prepare_dataset(const fs::path& root, const PrepareOptions& options);
std::string format_prepare_summary(const Manifest& manifest, const fs::path& root);
// Moves every quarantined file back where it came from (skipping any whose place is taken); returns the count.
int restore_quarantine(const fs::path& root);

}  // namespace petseg::data
