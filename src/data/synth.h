// Synthetic data sets in every layout petseg reads (data/layout.h). The Oxford-IIIT Pet: the exact folder layout,
// file formats and split files of the real data set, with images a model can learn from (a textured pet-like shape
// on a textured background); Pascal VOC and plain folders: textured objects of a few classes with their masks. On
// request, every kind of broken file each layout meets. Deterministic for a seed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace petseg::data {

struct Breed {
  const char* name;  // capitalized for cats, lower case for dogs, as in the real file names
  int class_id;      // 1..37 (alphabetical, case-insensitive)
  int species;       // 1 cat, 2 dog
  int breed_id;      // within the species
};
const std::vector<Breed>& oxford_breeds();

struct SynthOptions {
  std::filesystem::path out;
  int count = 200;  // samples named in the split files (plus ~1% in no split)
  uint64_t seed = 0;
  bool junk = false;
  int min_side = 180;
  int max_side = 500;
  int threads = 0;  // 0: one per core
  std::string layout = "oxford-pets";  // "oxford-pets", "voc" or "folders"
  // folders: train.txt/val.txt (else the split is seeded at load), classes.txt, and masks drawn in RGB colours named
  // by class_colors.txt (else class-index PNGs, every third one a palette PNG).
  bool split_files = false;
  bool classes_file = true;
  bool rgb_masks = false;
};

// The classes a synthetic folders set draws (class 0 is the background), and the file its RGB masks need.
const std::vector<std::string>& synth_folder_classes();
inline constexpr const char* kSynthClassColorsFile = "class_colors.txt";

// A broken or odd file planted by --junk and what `petseg prepare` must say about it: a rejection code, a
// conversion (accepted), a stray-file code, or (VOC's detection-only images) nothing at all.
struct PlantedJunk {
  std::string path;    // relative to the data set folder
  std::string name;    // sample name, empty for stray files
  std::string expect;  // "rejected:<code>", "converted:<conversion>", "stray:<code>" or "ignored:<why>"
};

struct SynthReport {
  int trainval = 0;  // in the training split file (pets trainval.txt, VOC and folders train.txt)
  int test = 0;      // in the validation split file (pets test.txt, VOC and folders val.txt)
  int unlisted = 0;  // samples in no split file (with split files)
  int samples = 0;   // every sample planned, junk included
  bool reused = false;  // the folder already held this exact set
  std::vector<PlantedJunk> junk;
};

// Writes the set into options.out. Refuses a non-empty folder that petseg synth did not make; a folder made with
// the same options is reused as is.
SynthReport synthesize(const SynthOptions& options);

// The embedded default data set: a synthetic set generated (and prepared) once into the cache folder
// ($PETSEG_CACHE, else $XDG_CACHE_HOME/petseg, else ~/.cache/petseg) and reused afterwards.
std::filesystem::path default_dataset(int count = 240, uint64_t seed = 0);

}  // namespace petseg::data
