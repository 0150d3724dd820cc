// The data set as the loader reads it, whatever its layout on disk (data/layout.h): its splits and its index
// (SegmentationDataset), from the manifest (data/manifest.h) or the layout's own files; pairs decode in data/pair.h.
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
#include "data/manifest.h"
#include "data/masks.h"
#include "data/pair.h"
#include "data/transforms.h"

namespace petseg::data {

namespace fs = std::filesystem;

// --layout's default: recognise the layout from what is in the folder (data/layout.h).
inline constexpr const char* kAutoLayout = "auto";

// The training split (pets trainval, VOC train, folders train), the validation split (pets test, VOC val, folders
// val), or both.
enum class Split { kTrainval, kTest, kAll };
inline const Choices kSplitChoices = {"trainval", "test", "all"};  // "train" and "val" are accepted too
Split parse_split(const std::string& name);
const char* split_name(Split split);

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
