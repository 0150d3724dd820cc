// The JSON manifest the prepare step writes (data/prepare.h) and the data set reads (data/dataset.h): every sample's
// verdict, its splits, size, decoder conversions and mask value counts; the stray files; the layout and its classes.
// Its reader and its writer, together.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/class_counts.h"

namespace petseg::data {

namespace fs = std::filesystem;

inline constexpr const char* kManifestName = "petseg_manifest.json";
inline constexpr int kManifestVersion = 1;

struct ManifestSample {
  std::string name;
  std::string image;  // relative to the data set folder
  std::string mask;
  std::vector<std::string> splits;  // the layout's split names ("trainval", "train", ...); empty: in no split
  int class_id = 0;                 // the pets' breed record (0 for other layouts)
  int species = 0;
  int breed_id = 0;
  bool accepted = false;
  std::string reason_code;  // when rejected
  std::string reason;
  std::vector<std::string> conversions;  // how the loader turns it into RGB (accepted samples)
  std::string warning;                   // a decoder warning it recovered from
  int width = 0;
  int height = 0;
  std::vector<std::string> quarantined;  // "from -> to" relative paths, when --quarantine moved its files
  // Accepted samples: the pixels of each value the decoded mask holds (manifests before it: empty), from which the
  // class pixel counts of --class-weights auto follow (data/class_counts.h).
  MaskValuePixels mask_pixels;
};

struct StrayFile {
  std::string path;  // relative to the data set folder
  std::string reason_code;
  std::string reason;
  std::string quarantined_to;
};

struct Manifest {
  int version = kManifestVersion;
  std::string created;
  std::string layout = "oxford-pets";  // manifests written before there were layouts are the pets'
  std::vector<std::string> classes;    // recorded for layouts whose classes are not fixed (folders) or named (voc)
  std::string mask_encoding;           // "" (the layout's own), "class-index" or "rgb-colors"
  std::string class_colors;            // the class-colours file prepare read (rgb-colors)
  bool seeded_split = false;           // no split files: the split is drawn from --seed and --val-fraction on open
  std::vector<ManifestSample> samples;
  std::vector<StrayFile> strays;
  std::vector<std::string> split_errors;
};

Manifest read_manifest(const fs::path& path);
// The same from the file's text; `path` names it in errors.
Manifest parse_manifest(const std::string& text, const fs::path& path);
// Writes the manifest atomically (the pets' samples without paths: their names give them).
void write_manifest(const fs::path& path, const Manifest& manifest);

}  // namespace petseg::data
