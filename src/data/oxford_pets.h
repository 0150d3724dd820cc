// The Oxford-IIIT Pet data set on disk, as the loader reads it: split files, sample validation, the JSON manifest
// (written by the prepare step, data/prepare.h), and the index the loader reads.
//
// Layout: DIR/images/<Name>.jpg, DIR/annotations/trimaps/<Name>.png (1 pet, 2 background, 3 border),
// DIR/annotations/{list,trainval,test}.txt with lines "Name CLASS-ID SPECIES BREED-ID" and '#' comments.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/choices.h"
#include "image/image_io.h"

namespace petseg::data {

namespace fs = std::filesystem;

inline constexpr const char* kManifestName = "petseg_manifest.json";
inline constexpr int kManifestVersion = 1;

inline constexpr const char* kSplitFiles[] = {"list", "trainval", "test"};  // annotations/<name>.txt

enum class Split { kTrainval, kTest, kAll };
inline const Choices kSplitChoices = {"trainval", "test", "all"};  // "train" and "val" are accepted too
Split parse_split(const std::string& name);
const char* split_name(Split split);

fs::path image_path(const fs::path& root, const std::string& name);
fs::path trimap_path(const fs::path& root, const std::string& name);

// One line of a split file.
struct PetRecord {
  std::string name;
  int class_id = 0;  // 1..37
  int species = 0;   // 1 cat, 2 dog
  int breed_id = 0;  // within the species
};

struct SplitFile {
  std::vector<PetRecord> records;
  std::vector<std::string> errors;  // "annotations/test.txt:12: ..." for lines that could not be parsed
};
SplitFile read_split_file(const fs::path& path);

// A sample that cannot be used; `code` is stable (tests and the manifest use it), what() names the file.
class SampleError : public Error {
 public:
  SampleError(std::string code, fs::path file, std::string detail)
      : Error(file.string() + ": " + detail),
        code_(std::move(code)),
        file_(std::move(file)),
        detail_(std::move(detail)) {}
  const std::string& code() const { return code_; }
  const fs::path& file() const { return file_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string code_;
  fs::path file_;
  std::string detail_;
};

// An image/trimap pair decoded and validated.
struct DecodedPair {
  image::Image rgb;      // 8-bit RGB, possibly DCT-scaled (see load_pair)
  image::Image trimap;   // raw values, original size, all in {1, 2, 3}
  int width = 0;  // original image size
  int height = 0;
  image::DecodeInfo image_info;
};

// Decodes and validates one pair, throwing SampleError on anything unusable. When `min_size` is given it is
// called with the original size and returns the smallest decode size the caller needs (scaled JPEG decoding).
using MinSizeFn = std::function<std::pair<int, int>(int width, int height)>;
void load_pair(const fs::path& image, const fs::path& trimap, DecodedPair& out, const MinSizeFn& min_size = {});
// load_pair's two halves on bytes already read (the paths only name the files in errors): the image, then the
// trimap, which is checked against the image's size and for values outside {1, 2, 3}.
void decode_pair_image(const uint8_t* data, size_t size, const fs::path& image, DecodedPair& out,
                       const MinSizeFn& min_size = {});
void decode_pair_trimap(const uint8_t* data, size_t size, const fs::path& trimap, DecodedPair& out);

// ------------------------------------------------------------------ manifest

struct ManifestSample {
  std::string name;
  std::vector<std::string> splits;  // "list", "trainval", "test"; empty: the image is in no split
  int class_id = 0;
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
  std::vector<ManifestSample> samples;
  std::vector<StrayFile> strays;
  std::vector<std::string> split_errors;
};

Manifest read_manifest(const fs::path& path);
// The same from the file's text; `path` names it in errors.
Manifest parse_manifest(const std::string& text, const fs::path& path);

// ------------------------------------------------------------------ the index the loader reads

struct PetSample {
  std::string name;
  fs::path image;
  fs::path trimap;
  int class_id = 0;
};

class PetDataset {
 public:
  // Reads DIR/petseg_manifest.json when present (only accepted samples of the split), otherwise the split file
  // (samples are then validated on the fly by the loader).
  static PetDataset open(const fs::path& root, Split split);
  static PetDataset from_samples(fs::path root, std::vector<PetSample> samples);

  size_t size() const { return samples_.size(); }
  const PetSample& operator[](size_t i) const { return samples_[i]; }
  const std::vector<PetSample>& samples() const { return samples_; }
  const fs::path& root() const { return root_; }
  bool validated() const { return validated_; }

 private:
  fs::path root_;
  std::vector<PetSample> samples_;
  bool validated_ = false;
};

}  // namespace petseg::data
