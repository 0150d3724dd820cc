// Opening a data set in any layout: the split's samples from the manifest or the layout's own files.
#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "core/fs.h"
#include "core/log.h"
#include "data/layout.h"
#include "data/oxford_pets.h"

namespace petseg::data {

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrainval;
  if (name == "val") return Split::kTest;
  check_choice("split", name, kSplitChoices);
  return name == "trainval" ? Split::kTrainval : name == "test" ? Split::kTest : Split::kAll;
}

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrainval:
      return "trainval";
    case Split::kTest:
      return "test";
    default:
      return "all";
  }
}

// ------------------------------------------------------------------ dataset index

namespace {

// Whether a manifest or index entry belongs to `split`; `val` is the seeded draw (layouts without split files).
bool in_split(const ManifestSample& s, Split split, const Layout& layout, bool seeded, bool val) {
  if (seeded) return split == Split::kAll || (split == Split::kTest) == val;
  if (split == Split::kAll) return !s.splits.empty();
  const auto names = layout.split_names();
  const std::string& wanted = split == Split::kTrainval ? names.first : names.second;
  return std::find(s.splits.begin(), s.splits.end(), wanted) != s.splits.end();
}

std::vector<bool> seeded_draw(const std::vector<ManifestSample>& samples, bool seeded, const DatasetOptions& options) {
  if (!seeded) return std::vector<bool>(samples.size(), false);
  std::vector<std::string> stems;
  for (const auto& s : samples) stems.push_back(s.name);
  return seeded_validation(stems, options.seed, options.val_fraction);
}

SegmentationSample to_sample(const fs::path& root, const ManifestSample& s, MaskEncoding encoding) {
  return {s.name, root / s.image, root / s.mask, s.class_id, encoding};
}

void warn_if_stale(const fs::path& root, const Layout& layout) {
  const fs::path manifest_path = root / kManifestName;
  const auto manifest_time = fs::last_write_time(manifest_path);
  for (const fs::path& f : layout.index_files(root)) {
    std::error_code ec;
    if (fs::exists(f, ec) && fs::last_write_time(f, ec) > manifest_time) {
      log_warning(f.string(), " is newer than ", manifest_path.string(), "; run petseg prepare again");
    }
  }
}

// A manifest's verdicts hold for the masks read the way prepare read them.
void check_encoding(const Manifest& m, const LayoutLabels& labels, const fs::path& path) {
  const std::string now = mask_encoding_name(labels.encoding);
  PETSEG_CHECK(m.mask_encoding.empty() || m.mask_encoding == now, path.string(), " was written reading the masks as ",
               m.mask_encoding, ", not ", now, "; run petseg prepare again",
               labels.encoding == MaskEncoding::kRgbColors ? " with --class-colors" : " without --class-colors");
}

// The split's class counts from the manifest's per-mask values (samples[i] with values[i]), through each sample's
// lut; none when a mask has no values recorded (a manifest from before prepare counted them).
std::optional<ClassPixelCounts> recorded_counts(const SegmentationDataset& d,
                                                const std::vector<const MaskValuePixels*>& values, BorderMode border) {
  ClassPixelCounts counts(d.num_classes());
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i]->empty()) return std::nullopt;
    counts.add(*values[i], d.mask_lut(d[i], border));
  }
  return counts;
}

}  // namespace

SegmentationDataset SegmentationDataset::open(const fs::path& root, Split split, const DatasetOptions& asked) {
  PETSEG_CHECK(fs::is_directory(root), "data set folder ", root.string(), " does not exist");
  PETSEG_CHECK(asked.val_fraction >= 0 && asked.val_fraction < 1, "--val-fraction must be in [0, 1), got ",
               asked.val_fraction);
  const fs::path manifest_path = root / kManifestName;
  std::optional<Manifest> manifest;
  if (fs::exists(manifest_path)) manifest = read_manifest(manifest_path);
  const Layout& layout = resolve_layout(root, asked.layout, manifest ? &*manifest : nullptr);
  DatasetOptions options = asked;
  if (options.class_colors.empty() && manifest && !manifest->class_colors.empty()) {
    options.class_colors = manifest->class_colors;  // what prepare read the masks with
  }
  const LayoutLabels labels = layout.labels(root, options, manifest ? &*manifest : nullptr, /*count_if_unknown=*/true);
  if (manifest) check_encoding(*manifest, labels, manifest_path);
  SegmentationDataset d;
  d.root_ = root;
  d.layout_ = layout.name();
  d.class_names_ = labels.class_names;
  d.colors_ = labels.colors;
  PETSEG_CHECK(options.ignore_index >= 0 && options.ignore_index <= 255, "--ignore-index must be in 0..255, got ",
               options.ignore_index);
  d.ignore_index_ = options.ignore_index;
  if (manifest) {
    warn_if_stale(root, layout);
    const std::vector<bool> val = seeded_draw(manifest->samples, manifest->seeded_split, options);
    size_t rejected = 0;
    std::vector<const MaskValuePixels*> counted;
    for (size_t i = 0; i < manifest->samples.size(); ++i) {
      const ManifestSample& s = manifest->samples[i];
      if (!in_split(s, split, layout, manifest->seeded_split, val[i])) continue;
      if (!s.accepted) {
        ++rejected;
        continue;
      }
      d.samples_.push_back(to_sample(root, s, labels.encoding));
      counted.push_back(&s.mask_pixels);
    }
    d.validated_ = true;
    d.recorded_counts_ = recorded_counts(d, counted, options.border);
    if (rejected) {
      const auto names = layout.split_names();  // the layout's own word for the split
      log_info(manifest_path.string(), ": skipping ", rejected, " rejected samples of ",
               split == Split::kAll ? "all" : split == Split::kTrainval ? names.first : names.second);
    }
  } else {
    const LayoutScan index = layout.index(root, split);
    for (const auto& e : index.split_errors) log_warning(e);
    const std::vector<bool> val = seeded_draw(index.samples, index.seeded_split, options);
    for (size_t i = 0; i < index.samples.size(); ++i) {
      if (in_split(index.samples[i], split, layout, index.seeded_split, val[i]))
        d.samples_.push_back(to_sample(root, index.samples[i], labels.encoding));
    }
    log_info("no ", kManifestName, " in ", root.string(),
             ": samples are checked as they load (petseg prepare checks them once)");
  }
  const auto names = layout.split_names();  // the layout's own word for the split in the message
  PETSEG_CHECK(!d.samples_.empty(), "no usable samples for split ",
               split == Split::kAll        ? "all"
               : split == Split::kTrainval ? names.first
                                           : names.second,
               " in ", root.string());
  return d;
}

MaskSpec SegmentationDataset::mask_spec(const SegmentationSample& sample) const { return {sample.mask_encoding, num_classes(), colors_}; }

MaskLut SegmentationDataset::mask_lut(const SegmentationSample& sample, BorderMode border) const {
  MaskLut lut = data::mask_lut(sample.mask_encoding, num_classes(), border);
  if (sample.mask_encoding != MaskEncoding::kTrimap) lut[size_t(ignore_index_)] = uint8_t(kIgnoreIndex);
  return lut;
}

}  // namespace petseg::data
