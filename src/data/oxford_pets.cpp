// The Oxford-IIIT Pet reader: split files, sample paths, and the layout (index for open, scan for prepare).
#include "data/oxford_pets.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/fs.h"
#include "data/layout.h"

namespace petseg::data {

fs::path image_path(const fs::path& root, const std::string& name) { return root / "images" / (name + ".jpg"); }
fs::path trimap_path(const fs::path& root, const std::string& name) {
  return root / "annotations" / "trimaps" / (name + ".png");
}

std::vector<std::string> pet_class_names(BorderMode border) {
  std::vector<std::string> names;
  for (int i = 0; i < num_classes(border); ++i) names.push_back(class_name(i));
  return names;
}

SplitFile read_split_file(const fs::path& path) {
  SplitFile out;
  std::istringstream in(read_text_file(path));
  std::string line;
  std::set<std::string> seen;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    std::istringstream fields(line);
    PetRecord r;
    std::string extra;
    const auto where = path.filename().string() + ":" + std::to_string(lineno) + ": ";
    if (!(fields >> r.name >> r.class_id >> r.species >> r.breed_id) || (fields >> extra)) {
      out.errors.push_back(where + "expected \"Name CLASS-ID SPECIES BREED-ID\", got \"" + line + "\"");
      continue;
    }
    if (r.name.find('/') != std::string::npos || r.name == "." || r.name == "..") {
      out.errors.push_back(where + "sample name \"" + r.name + "\" is not a plain file name");
      continue;
    }
    if (!seen.insert(r.name).second) {
      out.errors.push_back(where + "\"" + r.name + "\" is listed twice");
      continue;
    }
    out.records.push_back(r);
  }
  return out;
}

namespace {

ManifestSample pet_sample(const std::string& name) {
  ManifestSample s;
  s.name = name;
  s.image = image_path("", name).generic_string();
  s.mask = trimap_path("", name).generic_string();
  return s;
}

// The samples the split files name (with their class, species and breed), by name.
std::map<std::string, ManifestSample> samples_of_splits(const fs::path& annotations, LayoutScan& scan) {
  std::map<std::string, ManifestSample> by_name;
  bool any_split = false;
  for (const char* split : kSplitFiles) {
    const fs::path file = annotations / (std::string(split) + ".txt");
    if (!fs::exists(file)) continue;
    any_split = true;
    SplitFile sf = read_split_file(file);
    for (auto& e : sf.errors) scan.split_errors.push_back(std::move(e));
    for (const PetRecord& r : sf.records) {
      auto it = by_name.find(r.name);
      if (it == by_name.end()) it = by_name.emplace(r.name, pet_sample(r.name)).first;
      ManifestSample& s = it->second;
      s.class_id = r.class_id;
      s.species = r.species;
      s.breed_id = r.breed_id;
      s.splits.push_back(split);
    }
  }
  PETSEG_CHECK(any_split, "no split files in ", annotations.string(),
               " (expected list.txt, trainval.txt and test.txt from annotations.tar.gz)");
  return by_name;
}

// Files in images/ and trimaps/ that are not samples: strays (with the reason), orphan trimaps; images in no split
// join `by_name` (checked, then reported as such).
void scan_folders(const fs::path& root, std::map<std::string, ManifestSample>& by_name, LayoutScan& out) {
  const fs::path images = root / "images", trimaps = root / "annotations" / "trimaps";
  auto scan = [&](const fs::path& folder, const char* ext, const char* not_code, const char* not_reason,
                  const std::function<void(const fs::path&, const std::string&)>& on_file) {
    for (const auto& entry : fs::directory_iterator(folder)) {
      if (!entry.is_regular_file()) continue;
      const std::string filename = entry.path().filename().string();
      std::string code, reason;
      if (common_stray(filename, &code, &reason)) {
        out.strays.push_back({relative_to(root, entry.path()), code, reason, ""});
      } else if (ends_with(filename, ext)) {
        on_file(entry.path(), filename.substr(0, filename.size() - 4));
      } else {
        out.strays.push_back({relative_to(root, entry.path()), not_code, not_reason, ""});
      }
    }
  };
  scan(images, ".jpg", "not_an_image", "not a .jpg image", [&](const fs::path&, const std::string& name) {
    if (!by_name.count(name)) by_name.emplace(name, pet_sample(name));
  });
  scan(trimaps, ".png", "not_a_trimap", "not a .png trimap", [&](const fs::path& path, const std::string& name) {
    if (!by_name.count(name))
      out.strays.push_back({relative_to(root, path), "orphan_trimap", "trimap without image", ""});
  });
}

class OxfordPetsLayout : public Layout {
 public:
  const char* name() const override { return "oxford-pets"; }
  const char* title() const override { return "Oxford-IIIT Pet"; }
  // Pet orange, background blue, border yellow; VOC's colours beyond the trimap's three.
  image::Palette palette(int num_classes) const override {
    if (num_classes > 3) return Layout::palette(num_classes);
    const image::Palette pets = {{255, 140, 0}, {30, 90, 200}, {255, 230, 40}};
    return image::Palette(pets.begin(), pets.begin() + std::max(num_classes, 0));
  }
  // As the trimaps store them: 1 pet, 2 background, 3 border.
  uint8_t stored_value(int64_t cls) const override { return uint8_t(cls + 1); }
  bool has_trimap_border() const override { return true; }
  bool takes_ignore_index() const override { return false; }
  std::string looks_for() const override { return "images/ and annotations/trimaps/"; }
  bool matches(const fs::path& root) const override {
    return fs::is_directory(root / "images") && fs::is_directory(root / "annotations" / "trimaps");
  }
  std::pair<std::string, std::string> split_names() const override { return {"trainval", "test"}; }
  std::vector<fs::path> index_files(const fs::path& root) const override {
    std::vector<fs::path> files;
    for (const char* s : kSplitFiles) files.push_back(root / "annotations" / (std::string(s) + ".txt"));
    return files;
  }
  LayoutLabels labels(const fs::path&, const DatasetOptions& options, const Manifest*, bool) const override {
    return {pet_class_names(options.border), MaskEncoding::kTrimap, nullptr, false};
  }
  LayoutScan index(const fs::path& root, Split split) const override {
    LayoutScan out;
    const std::vector<std::string> files = split == Split::kAll ? std::vector<std::string>{"trainval", "test"}
                                                                : std::vector<std::string>{split_name(split)};
    for (const std::string& file : files) {
      const fs::path f = root / "annotations" / (file + ".txt");
      PETSEG_CHECK(fs::exists(f), "split file ", f.string(), " is missing");
      SplitFile sf = read_split_file(f);
      for (auto& e : sf.errors) out.split_errors.push_back(std::move(e));
      for (const auto& r : sf.records) {
        ManifestSample s = pet_sample(r.name);
        s.class_id = r.class_id;
        s.splits = {file};
        out.samples.push_back(std::move(s));
      }
    }
    return out;
  }
  LayoutScan scan(const fs::path& root) const override {
    LayoutScan out;
    std::map<std::string, ManifestSample> by_name = samples_of_splits(root / "annotations", out);
    scan_folders(root, by_name, out);
    for (auto& kv : by_name) out.samples.push_back(std::move(kv.second));
    return out;
  }
};

}  // namespace

const Layout& oxford_pets_layout() {
  static const OxfordPetsLayout layout;
  return layout;
}

}  // namespace petseg::data
