// The data set layouts petseg reads, behind one interface: a layout's reader (data/oxford_pets, data/voc,
// data/folders) says whether a folder holds its layout, lists its samples with their splits and the files prepare
// checks, names the classes, and makes every other decision that varies by layout (its title, its colours, how
// predictions are stored, which options apply), so that nothing outside src/data asks which layout a set is. A new
// layout is one reader file, registered in layouts() (layout.cpp); --layout's choices come from that list.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/choices.h"
#include "data/dataset.h"
#include "data/masks.h"
#include "image/palette.h"

namespace petseg::data {

// --layout's choices: kAutoLayout and every registered layout's name.
const Choices& layout_choices();

// A layout's classes and how its masks store them.
struct LayoutLabels {
  std::vector<std::string> class_names;
  MaskEncoding encoding = MaskEncoding::kClassIndex;
  std::shared_ptr<const ClassColors> colors;  // kRgbColors
  bool counted = false;                       // the class count came from the masks (no classes.txt, no colours file)
};

// What a layout's folder holds: samples (name, image and mask paths relative to the folder, splits; nothing
// decoded yet), and for prepare the stray files.
struct LayoutScan {
  std::vector<ManifestSample> samples;
  std::vector<StrayFile> strays;
  std::vector<std::string> split_errors;
  bool seeded_split = false;  // no split files: the validation split is drawn by seeded_validation
};

class Layout {
 public:
  virtual ~Layout() = default;
  virtual const char* name() const = 0;   // --layout's word: "oxford-pets"
  virtual const char* title() const = 0;  // for messages: "Oxford-IIIT Pet"
  // What a report calls the data set in `root`: the title, or for a set of the user's own its folder's name.
  virtual std::string title_of(const fs::path& root) const { return title(); }
  // The colours its n classes are drawn in (default: VOC's colour map).
  virtual image::Palette palette(int num_classes) const { return image::voc_colormap(num_classes); }
  // The value a predicted class is stored as in a mask file of this layout (default: the class index).
  virtual uint8_t stored_value(int64_t cls) const { return uint8_t(cls); }
  // Whether --border (a trimap's border as a class or ignored), --class-colors (RGB masks) and --ignore-index (a
  // class of class-index or colour masks left out) mean something for its masks.
  virtual bool has_trimap_border() const { return false; }
  virtual bool takes_class_colors() const { return false; }
  virtual bool takes_ignore_index() const { return true; }
  // What recognises it, for errors: "images/ and annotations/trimaps/".
  virtual std::string looks_for() const = 0;
  virtual bool matches(const fs::path& root) const = 0;
  // The names its manifest entries carry for the training and the validation split ("trainval", "test").
  virtual std::pair<std::string, std::string> split_names() const = 0;
  // Files that, changed after prepare, make the manifest stale (split files, classes.txt).
  virtual std::vector<fs::path> index_files(const fs::path& root) const = 0;
  // The classes. `manifest` (null when there is none) holds what prepare counted; `count_if_unknown` lets a
  // layout count them from the masks when nothing else names them (prepare counts them itself).
  virtual LayoutLabels labels(const fs::path& root, const DatasetOptions& options, const Manifest* manifest,
                              bool count_if_unknown) const = 0;
  // The samples of `split` as read without a manifest (nothing decoded, no stray files looked for).
  virtual LayoutScan index(const fs::path& root, Split split) const = 0;
  // Everything prepare checks: every sample, in a split or not, and the stray files.
  virtual LayoutScan scan(const fs::path& root) const = 0;
};

// Every layout, in the order "auto" tries them.
const std::vector<const Layout*>& layouts();
const Layout& layout_named(const std::string& name);  // an error lists the valid names
// The layout `option` names; with "auto" the one the manifest records (when given), else the first whose folders
// `root` holds, else an error naming what each layout looks for. The folder must hold the layout chosen.
const Layout& resolve_layout(const fs::path& root, const std::string& option, const Manifest* manifest);

// Layouts without split files: which of `stems` are validation samples. round(fraction * n) of them (at least one
// and not all when 0 < fraction and n >= 2), the same for the same seed and stems whatever their order: every rank
// and every resume of a run draws the same split.
std::vector<bool> seeded_validation(const std::vector<std::string>& stems, uint64_t seed, double fraction);

// ------------------------------------------------------------------ helpers the readers share

std::string relative_to(const fs::path& root, const fs::path& path);
bool starts_with(const std::string& s, const std::string& prefix);
bool ends_with(const std::string& s, const std::string& suffix);
// Files every archive may carry that are never samples (AppleDouble, MATLAB files): true with the reason.
bool common_stray(const std::string& filename, std::string* code, std::string* reason);

// A split file of stems, one per line ('#' comments and blank lines skipped), as VOC's ImageSets and a folders
// set's train.txt/val.txt hold them.
struct StemFile {
  std::vector<std::string> stems;
  std::vector<std::string> errors;  // "val.txt:3: ..." for lines that were left out
};
StemFile read_stem_file(const fs::path& path);
// classes.txt: one class name per line, in class-id order.
std::vector<std::string> read_class_names(const fs::path& path);

}  // namespace petseg::data
