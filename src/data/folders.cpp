// The plain-folders reader: file listing (stems, extensions, strays), split files or the seeded split, and the
// classes from classes.txt, the class-colours file, the manifest or the masks themselves.
#include "data/folders.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <set>

#include "core/fs.h"
#include "core/log.h"
#include "core/parallel.h"
#include "data/layout.h"

namespace petseg::data {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// What images/ and masks/ hold: the image and mask of each stem (relative paths), and the files that are neither.
struct Listing {
  std::map<std::string, std::string> images;
  std::map<std::string, std::string> masks;
  std::vector<StrayFile> strays;
};

void list_images(const fs::path& root, Listing& out) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(root / "images")) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  // Preferred extension first, so which of two same-stem images is used never depends on the listing order.
  auto rank = [](const fs::path& p) {
    const auto& exts = kFolderImageExtensions;
    return size_t(std::find(exts.begin(), exts.end(), lower(p.extension().string())) - exts.begin());
  };
  std::sort(files.begin(), files.end(), [&](const fs::path& a, const fs::path& b) {
    return rank(a) != rank(b) ? rank(a) < rank(b) : a.filename() < b.filename();
  });
  for (const fs::path& p : files) {
    const std::string filename = p.filename().string(), rel = relative_to(root, p);
    std::string code, reason;
    if (common_stray(filename, &code, &reason)) {
      out.strays.push_back({rel, code, reason, ""});
    } else if (rank(p) == kFolderImageExtensions.size()) {
      out.strays.push_back({rel, "not_an_image", "not a .jpg, .jpeg or .png image", ""});
    } else if (!out.images.emplace(p.stem().string(), rel).second) {
      out.strays.push_back({rel, "duplicate_stem",
                            "another image has this stem: " + out.images[p.stem().string()] + " is the one used", ""});
    }
  }
}

void list_masks(const fs::path& root, Listing& out) {
  for (const auto& e : fs::directory_iterator(root / "masks")) {
    if (!e.is_regular_file()) continue;
    const std::string filename = e.path().filename().string(), rel = relative_to(root, e.path());
    std::string code, reason;
    if (common_stray(filename, &code, &reason)) {
      out.strays.push_back({rel, code, reason, ""});
    } else if (lower(e.path().extension().string()) != ".png") {
      out.strays.push_back({rel, "not_a_mask", "not a .png mask (masks must be lossless)", ""});
    } else if (!out.masks.emplace(e.path().stem().string(), rel).second) {
      out.strays.push_back({rel, "duplicate_stem", "another mask has this stem", ""});
    }
  }
}

bool has_split_files(const fs::path& root) { return fs::exists(root / "train.txt") || fs::exists(root / "val.txt"); }

ManifestSample folder_sample(const std::string& stem, const Listing& listing) {
  ManifestSample s;
  s.name = stem;
  const auto image = listing.images.find(stem), mask = listing.masks.find(stem);
  s.image = image != listing.images.end() ? image->second : "images/" + stem + ".jpg";
  s.mask = mask != listing.masks.end() ? mask->second : "masks/" + stem + ".png";
  return s;
}

// Samples from the split files `splits` ("train", "val"), by stem; a missing file is an error when `required`.
std::map<std::string, ManifestSample> samples_of_splits(const fs::path& root, const std::vector<std::string>& splits,
                                                        const Listing& listing, bool required, LayoutScan& out) {
  std::map<std::string, ManifestSample> by_stem;
  for (const std::string& split : splits) {
    const fs::path file = root / (split + ".txt");
    if (!fs::exists(file)) {
      PETSEG_CHECK(!required, "split file ", file.string(),
                   " is missing (with split files, train.txt and val.txt both name their stems)");
      continue;
    }
    StemFile sf = read_stem_file(file);
    for (auto& e : sf.errors) out.split_errors.push_back(std::move(e));
    for (const std::string& stem : sf.stems) {
      auto it = by_stem.find(stem);
      if (it == by_stem.end()) it = by_stem.emplace(stem, folder_sample(stem, listing)).first;
      it->second.splits.push_back(split);
    }
  }
  for (const auto& kv : by_stem) {  // a validation sample trained on would flatter every score
    if (kv.second.splits.size() > 1) out.split_errors.push_back("\"" + kv.first + "\" is in train.txt and val.txt");
  }
  return by_stem;
}

// The class count from the masks of the samples whose mask has its image's size: the largest value + 1.
LayoutLabels count_classes(const fs::path& root) {
  Listing listing;
  list_images(root, listing);
  list_masks(root, listing);
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [stem, image] : listing.images) {
    if (listing.masks.count(stem)) pairs.push_back({image, listing.masks.at(stem)});
  }
  log_info(root.string(), ": no classes.txt and no ", kManifestName, ": counting the classes in ", pairs.size(),
           " masks (petseg prepare counts them once)");
  std::atomic<int> top{-1};
  parallel_for(pairs.size(), 0, [&](size_t i) {
    try {
      const auto image = read_file(root / pairs[i].first), mask = read_file(root / pairs[i].second);
      const image::ImageHeader header = image::read_header(image.data(), image.size());
      const image::Image m = image::decode_mask(mask.data(), mask.size());
      if (m.width != header.width || m.height != header.height) return;
      const int v = max_class_value(m);
      for (int seen = top.load(); v > seen && !top.compare_exchange_weak(seen, v);) {
      }
    } catch (const Error&) {  // an unreadable pair is prepare's (and the loader's) to report
    }
  });
  PETSEG_CHECK(top >= 0, "cannot count the classes of ", root.string(), ": none of its ", pairs.size(),
               " masks is a class-index PNG of its image's size; write classes.txt (one class name per line), or "
               "read masks drawn in colours with --class-colors FILE");
  LayoutLabels labels;
  for (int c = 0; c <= top; ++c) labels.class_names.push_back("class_" + std::to_string(c));
  labels.counted = true;
  return labels;
}

LayoutLabels colour_labels(const fs::path& root, const fs::path& file) {
  auto colors = std::make_shared<const ClassColors>(read_class_colors(file));
  if (fs::exists(root / "classes.txt")) {
    const std::vector<std::string> names = read_class_names(root / "classes.txt");
    PETSEG_CHECK(names == colors->class_names, (root / "classes.txt").string(), " lists ", join_choices(names),
                 "; the class colours file ", file.string(), " names ", join_choices(colors->class_names),
                 ": the two must agree (or leave classes.txt out)");
  }
  return {colors->class_names, MaskEncoding::kRgbColors, colors, false};
}

class FoldersLayout : public Layout {
 public:
  const char* name() const override { return "folders"; }
  const char* title() const override { return "plain folders"; }
  std::string title_of(const fs::path& root) const override {
    const fs::path folder = root.lexically_normal();
    const std::string name = (folder.has_filename() ? folder : folder.parent_path()).filename().string();
    return name.empty() ? "your own data" : name;
  }
  bool takes_class_colors() const override { return true; }
  std::string looks_for() const override { return "images/ and masks/"; }
  bool matches(const fs::path& root) const override {
    return fs::is_directory(root / "images") && fs::is_directory(root / "masks");
  }
  std::pair<std::string, std::string> split_names() const override { return {"train", "val"}; }
  std::vector<fs::path> index_files(const fs::path& root) const override {
    return {root / "train.txt", root / "val.txt", root / "classes.txt"};
  }
  LayoutLabels labels(const fs::path& root, const DatasetOptions& options, const Manifest* manifest,
                      bool count_if_unknown) const override {
    if (!options.class_colors.empty()) return colour_labels(root, options.class_colors);
    if (fs::exists(root / "classes.txt")) {
      return {read_class_names(root / "classes.txt"), MaskEncoding::kClassIndex, nullptr, false};
    }
    if (manifest && !manifest->classes.empty()) return {manifest->classes, MaskEncoding::kClassIndex, nullptr, true};
    if (!count_if_unknown) return {{}, MaskEncoding::kClassIndex, nullptr, true};
    return count_classes(root);
  }
  LayoutScan index(const fs::path& root, Split split) const override {
    Listing listing;
    list_images(root, listing);
    list_masks(root, listing);
    LayoutScan out;
    if (has_split_files(root)) {
      const std::vector<std::string> splits = split == Split::kAll        ? std::vector<std::string>{"train", "val"}
                                              : split == Split::kTrainval ? std::vector<std::string>{"train"}
                                                                          : std::vector<std::string>{"val"};
      for (auto& kv : samples_of_splits(root, splits, listing, /*required=*/true, out))
        out.samples.push_back(std::move(kv.second));
    } else {
      for (const auto& kv : listing.images) out.samples.push_back(folder_sample(kv.first, listing));
      out.seeded_split = true;
    }
    return out;
  }
  LayoutScan scan(const fs::path& root) const override {
    Listing listing;
    list_images(root, listing);
    list_masks(root, listing);
    LayoutScan out;
    out.strays = listing.strays;
    std::map<std::string, ManifestSample> by_stem;
    if (has_split_files(root)) by_stem = samples_of_splits(root, {"train", "val"}, listing, false, out);
    out.seeded_split = !has_split_files(root);
    for (const auto& kv : listing.images) {
      if (!by_stem.count(kv.first)) by_stem.emplace(kv.first, folder_sample(kv.first, listing));
    }
    for (const auto& [stem, mask] : listing.masks) {
      if (!by_stem.count(stem)) out.strays.push_back({mask, "orphan_mask", "mask without image", ""});
    }
    for (auto& kv : by_stem) out.samples.push_back(std::move(kv.second));
    return out;
  }
};

}  // namespace

const Layout& folders_layout() {
  static const FoldersLayout layout;
  return layout;
}

}  // namespace petseg::data
