// The data set as the loader reads it, whatever its layout on disk (data/layout.h): splits, decoding and validating
// one image/mask pair, the JSON manifest the prepare step writes (data/prepare.h), and the index (SegmentationDataset).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/choices.h"
#include "data/class_counts.h"
#include "data/masks.h"
#include "data/transforms.h"
#include "image/image_io.h"

namespace petseg::data {

namespace fs = std::filesystem;

inline constexpr const char* kManifestName = "petseg_manifest.json";
// --layout's default: recognise the layout from what is in the folder (data/layout.h).
inline constexpr const char* kAutoLayout = "auto";
inline constexpr int kManifestVersion = 1;

// The training split (pets trainval, VOC train, folders train), the validation split (pets test, VOC val, folders
// val), or both.
enum class Split { kTrainval, kTest, kAll };
inline const Choices kSplitChoices = {"trainval", "test", "all"};  // "train" and "val" are accepted too
Split parse_split(const std::string& name);
const char* split_name(Split split);

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

// An image/mask pair decoded and validated.
struct DecodedPair {
  image::Image rgb;   // 8-bit RGB, possibly DCT-scaled (see load_pair)
  image::Image mask;  // original size, 1 channel: a trimap's raw values (1..3) or class indices (255: ignore)
  int width = 0;      // original image size
  int height = 0;
  image::DecodeInfo image_info;
};

// Decodes and validates one pair, throwing SampleError on anything unusable. When `min_size` is given it is
// called with the original size and returns the smallest decode size the caller needs (scaled JPEG decoding).
// `spec` says how the mask stores its labels (by default: a trimap).
using MinSizeFn = std::function<std::pair<int, int>(int width, int height)>;
void load_pair(const fs::path& image, const fs::path& mask, DecodedPair& out, const MinSizeFn& min_size = {},
               const MaskSpec& spec = {});
// load_pair's two halves on bytes already read (the paths only name the files in errors): the image, then the
// mask, which is checked against the image's size and for values its encoding does not allow.
void decode_pair_image(const uint8_t* data, size_t size, const fs::path& image, DecodedPair& out,
                       const MinSizeFn& min_size = {});
void decode_pair_mask(const uint8_t* data, size_t size, const fs::path& mask, const MaskSpec& spec, DecodedPair& out);
// The trimap case of decode_pair_mask: values outside {1, 2, 3} are rejected.
void decode_pair_trimap(const uint8_t* data, size_t size, const fs::path& trimap, DecodedPair& out);

// ------------------------------------------------------------------ manifest

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

// ------------------------------------------------------------------ the index the loader reads

struct SegmentationSample {
  std::string name;
  fs::path image;
  fs::path mask;  // the mask file (the pets' trimap; VOC's SegmentationClass PNG; a folders set's mask)
  int class_id = 0;
  MaskEncoding mask_encoding = MaskEncoding::kTrimap;
};

// How a data set folder is read: every field has a command-line option of the same name (--layout, ...).
struct DatasetOptions {
  std::string layout = kAutoLayout;        // data/layout.h's layout_choices()
  double val_fraction = 0.1;               // folders without train.txt/val.txt: the share of images for validation
  uint64_t seed = 0;                       // ... drawn from this seed (the run's), the same on every rank and resume
  std::filesystem::path class_colors{};    // folders with RGB masks: the "R,G,B name" file
  BorderMode border = BorderMode::kClass;  // the pets: whether the trimap border is a class (class_names)
  // Class-index and colour masks: the class id the loss and the metrics ignore, as torch's CrossEntropyLoss's
  // ignore_index (255, the default, is the stored "ignore" value every layout already has; the pets: --border).
  int ignore_index = 255;
};

// One split of a data set in any layout: its samples, its classes, and how its masks store them.
class SegmentationDataset {
 public:
  // Reads DIR/petseg_manifest.json when present (only accepted samples of the split), otherwise the layout's own
  // split files (samples are then validated on the fly by the loader). The layout is options.layout, or with
  // "auto" the manifest's, or the one the folder's contents match.
  static SegmentationDataset open(const fs::path& root, Split split, const DatasetOptions& options);
  static SegmentationDataset open(const fs::path& root, Split split) { return open(root, split, DatasetOptions{}); }

  size_t size() const { return samples_.size(); }
  const SegmentationSample& operator[](size_t i) const { return samples_[i]; }
  const std::vector<SegmentationSample>& samples() const { return samples_; }
  const fs::path& root() const { return root_; }
  bool validated() const { return validated_; }
  const std::string& layout() const { return layout_; }
  int num_classes() const { return int(class_names_.size()); }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // What decoding `sample`'s mask needs, and the lookup from its decoded values to class indices (`border`: the
  // loader's, for trimaps).
  MaskSpec mask_spec(const SegmentationSample& sample) const;
  MaskLut mask_lut(const SegmentationSample& sample, BorderMode border) const;
  // The class pixel counts of this split that the manifest records (prepare's per-mask counts through mask_lut
  // under the open's border and ignore index); empty without a manifest or when it has no counts (one from before
  // prepare recorded them): count_class_pixels counts such a set.
  const std::optional<ClassPixelCounts>& recorded_class_counts() const { return recorded_counts_; }

 private:
  fs::path root_;
  std::vector<SegmentationSample> samples_;
  bool validated_ = false;
  std::string layout_ = "oxford-pets";
  std::vector<std::string> class_names_ = {"pet", "background", "border"};
  std::shared_ptr<const ClassColors> colors_;
  int ignore_index_ = 255;
  std::optional<ClassPixelCounts> recorded_counts_;
};

}  // namespace petseg::data
