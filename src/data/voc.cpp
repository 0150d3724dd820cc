// The Pascal VOC reader: the segmentation split files drive the samples; masks in no split are checked too.
#include "data/voc.h"

#include <map>

#include "data/layout.h"
#include "image/palette.h"

namespace petseg::data {
namespace {

constexpr const char* kImages = "JPEGImages";
constexpr const char* kMasks = "SegmentationClass";

fs::path split_file(const fs::path& root, const std::string& split) {
  return root / "ImageSets" / "Segmentation" / (split + ".txt");
}

ManifestSample voc_sample(const std::string& id) {
  ManifestSample s;
  s.name = id;
  s.image = std::string(kImages) + "/" + id + ".jpg";
  s.mask = std::string(kMasks) + "/" + id + ".png";
  return s;
}

// The samples the split files `splits` name, by id, with the splits that name them.
std::map<std::string, ManifestSample> samples_of_splits(const fs::path& root, const std::vector<std::string>& splits,
                                                        bool required, LayoutScan& out) {
  std::map<std::string, ManifestSample> by_id;
  for (const std::string& split : splits) {
    const fs::path file = split_file(root, split);
    if (!fs::exists(file)) {
      PETSEG_CHECK(!required, "split file ", file.string(), " is missing");
      continue;
    }
    StemFile sf = read_stem_file(file);
    for (auto& e : sf.errors) out.split_errors.push_back(std::move(e));
    for (const std::string& id : sf.stems) {
      auto it = by_id.find(id);
      if (it == by_id.end()) it = by_id.emplace(id, voc_sample(id)).first;
      it->second.splits.push_back(split);
    }
  }
  for (const auto& kv : by_id) {  // a validation sample trained on would flatter every score
    if (kv.second.splits.size() > 1) out.split_errors.push_back("\"" + kv.first + "\" is in train.txt and val.txt");
  }
  return by_id;
}

// Stray files among the images and masks; masks in no split join `by_id` (checked, reported as in no split).
void scan_folders(const fs::path& root, std::map<std::string, ManifestSample>& by_id, LayoutScan& out) {
  for (const auto& entry : fs::directory_iterator(root / kMasks)) {
    if (!entry.is_regular_file()) continue;
    const std::string filename = entry.path().filename().string();
    std::string code, reason;
    if (common_stray(filename, &code, &reason)) {
      out.strays.push_back({relative_to(root, entry.path()), code, reason, ""});
    } else if (!ends_with(filename, ".png")) {
      out.strays.push_back({relative_to(root, entry.path()), "not_a_mask", "not a .png mask", ""});
    } else {
      const std::string id = filename.substr(0, filename.size() - 4);
      if (!by_id.count(id)) by_id.emplace(id, voc_sample(id));
    }
  }
  // Images without a mask are VOC's detection-only images: neither samples nor strays.
  for (const auto& entry : fs::directory_iterator(root / kImages)) {
    std::string code, reason;
    if (entry.is_regular_file() && common_stray(entry.path().filename().string(), &code, &reason)) {
      out.strays.push_back({relative_to(root, entry.path()), code, reason, ""});
    }
  }
}

class VocLayout : public Layout {
 public:
  const char* name() const override { return "voc"; }
  const char* title() const override { return "Pascal VOC"; }
  std::string looks_for() const override { return "JPEGImages/ and SegmentationClass/"; }
  bool matches(const fs::path& root) const override {
    return fs::is_directory(root / kImages) && fs::is_directory(root / kMasks);
  }
  std::pair<std::string, std::string> split_names() const override { return {"train", "val"}; }
  std::vector<fs::path> index_files(const fs::path& root) const override {
    return {split_file(root, "train"), split_file(root, "val")};
  }
  LayoutLabels labels(const fs::path&, const DatasetOptions&, const Manifest*, bool) const override {
    return {voc_class_names(), MaskEncoding::kClassIndex, nullptr, false};
  }
  LayoutScan index(const fs::path& root, Split split) const override {
    LayoutScan out;
    const std::vector<std::string> splits = split == Split::kAll        ? std::vector<std::string>{"train", "val"}
                                            : split == Split::kTrainval ? std::vector<std::string>{"train"}
                                                                        : std::vector<std::string>{"val"};
    for (auto& kv : samples_of_splits(root, splits, /*required=*/true, out))
      out.samples.push_back(std::move(kv.second));
    return out;
  }
  LayoutScan scan(const fs::path& root) const override {
    LayoutScan out;
    std::map<std::string, ManifestSample> by_id = samples_of_splits(root, {"train", "val"}, false, out);
    PETSEG_CHECK(!by_id.empty() || fs::exists(split_file(root, "train")) || fs::exists(split_file(root, "val")),
                 "no split files in ", (root / "ImageSets" / "Segmentation").string(),
                 " (expected train.txt and val.txt, as in VOCtrainval_11-May-2012.tar)");
    scan_folders(root, by_id, out);
    for (auto& kv : by_id) out.samples.push_back(std::move(kv.second));
    return out;
  }
};

}  // namespace

const std::vector<std::string>& voc_class_names() {
  static const std::vector<std::string> names = {
      "background", "aeroplane", "bicycle",     "bird",  "boat",        "bottle", "bus",
      "car",        "cat",       "chair",       "cow",   "diningtable", "dog",    "horse",
      "motorbike",  "person",    "pottedplant", "sheep", "sofa",        "train",  "tvmonitor"};
  return names;
}

std::vector<uint8_t> voc_palette() {
  std::vector<uint8_t> bytes;
  for (const image::Color& c : image::voc_colormap(256)) bytes.insert(bytes.end(), c.begin(), c.end());
  return bytes;
}

const Layout& voc_layout() {
  static const VocLayout layout;
  return layout;
}

}  // namespace petseg::data
