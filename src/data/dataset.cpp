// Pair decoding and validation for every mask encoding, reading the manifest, and opening a data set in any layout.
// Nothing here deletes or rewrites a user's file: conversions happen when the loader decodes.
#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/fs.h"
#include "core/json_check.h"
#include "core/log.h"
#include "data/layout.h"
#include "data/oxford_pets.h"

namespace petseg::data {
namespace {

using json = nlohmann::json;

std::vector<uint8_t> read_part(const fs::path& path, const char* what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw SampleError(std::string("missing_") + what, path, std::string("missing (no ") + what + " file)");
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw SampleError(std::string("unreadable_") + what, path, e.what());
  }
  if (bytes.empty()) throw SampleError(std::string("empty_") + what, path, "empty file (0 bytes)");
  return bytes;
}

// `what` is "trimap" or "mask": it names the file in the message and starts the code.
void check_mask_size(int width, int height, const DecodedPair& out, const fs::path& path, const std::string& what) {
  if (width == out.width && height == out.height) return;
  throw SampleError(what + "_size_mismatch", path,
                    detail::str_cat(what, " is ", width, "x", height, ", its image is ", out.width, "x", out.height));
}

void decode_index_mask(const uint8_t* data, size_t size, const fs::path& path, const MaskSpec& spec, DecodedPair& out) {
  try {
    out.mask = image::decode_mask(data, size);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (starts_with(what, "mask is a colour image")) {
      throw SampleError("mask_color", path, what + "; masks drawn in colours are read with --class-colors FILE");
    }
    throw SampleError("unreadable_mask", path, what);
  }
  check_mask_size(out.mask.width, out.mask.height, out, path, "mask");
  const int bad = find_value_beyond(out.mask, spec.num_classes);
  if (bad >= 0) {
    throw SampleError("mask_bad_value", path,
                      detail::str_cat("mask holds the value ", bad, ", beyond the ", spec.num_classes, " classes (0..",
                                      spec.num_classes - 1, "; 255 = ignore)"));
  }
}

void decode_color_mask(const uint8_t* data, size_t size, const fs::path& path, const MaskSpec& spec, DecodedPair& out) {
  PETSEG_CHECK(spec.colors, path.string(), ": RGB masks need a class-colours file (--class-colors)");
  image::Image rgb;
  try {
    PETSEG_CHECK(image::sniff_format(data, size) == image::ImageFormat::kPng, "not a PNG image (masks are lossless)");
    rgb = image::decode_rgb(data, size);
  } catch (const Error& e) {
    throw SampleError("unreadable_mask", path, e.what());
  }
  check_mask_size(rgb.width, rgb.height, out, path, "mask");
  const int64_t bad = map_class_colors(rgb, *spec.colors, out.mask);
  if (bad >= 0) {
    const uint8_t* p = &rgb.pixels[size_t(bad) * 3];
    throw SampleError("mask_unknown_color", path,
                      detail::str_cat("colour ", format_color(uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2]),
                                      " (pixel ", bad % rgb.width, ",", bad / rgb.width,
                                      ") is not in the class colours file ", spec.colors->file.string()));
  }
}

// A manifest path: relative, inside the data set folder.
std::string checked_relative(const std::string& p, const fs::path& manifest) {
  const fs::path path(p);
  bool escapes = path.is_absolute() || p.empty();
  for (const auto& part : path) escapes = escapes || part == "..";
  PETSEG_CHECK(!escapes, manifest.string(), ": bad sample path \"", p, "\"");
  return p;
}

// {"1": 5120, "2": 9000}: pixels per stored mask value, as prepare writes them (values 0..255, counts >= 0).
MaskValuePixels mask_pixels_from_json(const json& j, const fs::path& path, const std::string& sample) {
  PETSEG_CHECK(j.is_object(), path.string(), ": mask_pixels of sample \"", sample, "\" is not an object");
  MaskValuePixels values;
  for (const auto& [key, pixels] : j.items()) {
    const bool digits = !key.empty() && key.size() <= 3 && key.find_first_not_of("0123456789") == std::string::npos;
    const int value = digits ? std::stoi(key) : -1;
    const int64_t n = pixels.get<int64_t>();
    PETSEG_CHECK(value >= 0 && value <= 255 && n >= 0, path.string(), ": bad mask_pixels entry \"", key,
                 "\": ", pixels.dump(), " of sample \"", sample, "\"");
    values.emplace_back(value, n);
  }
  std::sort(values.begin(), values.end());  // the keys come in text order ("10" before "2")
  return values;
}

ManifestSample sample_from_json(const json& j, const fs::path& path, bool pets) {
  ManifestSample s;
  s.name = j.at("name").get<std::string>();
  PETSEG_CHECK(!s.name.empty() && s.name.find('/') == std::string::npos && s.name != "..", path.string(),
               ": bad sample name \"", s.name, "\"");
  // Pets manifests name no paths: the name gives them (as before layouts existed).
  s.image = checked_relative(j.value("image", pets ? image_path("", s.name).generic_string() : ""), path);
  s.mask = checked_relative(j.value("mask", pets ? trimap_path("", s.name).generic_string() : ""), path);
  s.splits = j.at("splits").get<std::vector<std::string>>();
  s.class_id = j.value("class_id", 0);
  s.species = j.value("species", 0);
  s.breed_id = j.value("breed_id", 0);
  s.accepted = j.at("accepted").get<bool>();
  s.reason_code = j.value("reason_code", "");
  s.reason = j.value("reason", "");
  s.conversions = j.value("conversions", std::vector<std::string>{});
  s.warning = j.value("warning", "");
  s.width = j.value("width", 0);
  s.height = j.value("height", 0);
  s.quarantined = j.value("quarantined", std::vector<std::string>{});
  if (j.contains("mask_pixels")) s.mask_pixels = mask_pixels_from_json(j.at("mask_pixels"), path, s.name);
  return s;
}

}  // namespace

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

// ------------------------------------------------------------------ pairs

void load_pair(const fs::path& image, const fs::path& mask, DecodedPair& out, const MinSizeFn& min_size,
               const MaskSpec& spec) {
  const std::vector<uint8_t> image_bytes = read_part(image, "image");
  decode_pair_image(image_bytes.data(), image_bytes.size(), image, out, min_size);
  const std::vector<uint8_t> mask_bytes = read_part(mask, spec.encoding == MaskEncoding::kTrimap ? "trimap" : "mask");
  decode_pair_mask(mask_bytes.data(), mask_bytes.size(), mask, spec, out);
}

void decode_pair_image(const uint8_t* data, size_t size, const fs::path& image, DecodedPair& out,
                       const MinSizeFn& min_size) {
  out.image_info = image::DecodeInfo{};
  try {
    const image::ImageHeader header = image::read_header(data, size);
    int min_w = 0, min_h = 0;
    if (min_size) std::tie(min_w, min_h) = min_size(header.width, header.height);
    out.rgb = image::decode_rgb(data, size, &out.image_info, min_w, min_h);
    out.width = header.width;
    out.height = header.height;
  } catch (const SampleError&) {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    throw SampleError(starts_with(what, "truncated JPEG") ? "truncated_jpeg" : "unreadable_image", image, what);
  }
  std::string ext = image.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if ((ext == ".jpg" || ext == ".jpeg") && out.image_info.header.format == image::ImageFormat::kPng) {
    out.image_info.conversions.push_back("png_named_jpg");
  }
}

void decode_pair_mask(const uint8_t* data, size_t size, const fs::path& mask, const MaskSpec& spec, DecodedPair& out) {
  switch (spec.encoding) {
    case MaskEncoding::kTrimap:
      decode_pair_trimap(data, size, mask, out);
      break;
    case MaskEncoding::kClassIndex:
      decode_index_mask(data, size, mask, spec, out);
      break;
    case MaskEncoding::kRgbColors:
      decode_color_mask(data, size, mask, spec, out);
      break;
  }
}

void decode_pair_trimap(const uint8_t* data, size_t size, const fs::path& trimap, DecodedPair& out) {
  try {
    out.mask = image::decode_mask(data, size);
  } catch (const Error& e) {
    const std::string what = e.what();
    throw SampleError(starts_with(what, "mask is a colour image") ? "trimap_color" : "unreadable_trimap", trimap, what);
  }
  check_mask_size(out.mask.width, out.mask.height, out, trimap, "trimap");
  const int bad = find_invalid_trimap_value(out.mask);
  if (bad >= 0) {
    throw SampleError("trimap_bad_value", trimap,
                      detail::str_cat("trimap holds the value ", bad, " (valid: 1 pet, 2 background, 3 border)"));
  }
}

// ------------------------------------------------------------------ manifest

Manifest read_manifest(const fs::path& path) { return parse_manifest(read_text_file(path), path); }

Manifest parse_manifest(const std::string& text, const fs::path& path) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    PETSEG_FAIL(path.string(), ": not a valid manifest (", e.what(), "); run petseg prepare again");
  }
  check_json_numbers(doc, path.string());
  try {
    PETSEG_CHECK(doc.is_object() && doc.value("format", "") == "petseg-manifest", path.string(),
                 ": not a petseg manifest");
    Manifest m;
    m.version = doc.at("version").get<int>();
    PETSEG_CHECK(m.version == kManifestVersion, path.string(), ": manifest version ", m.version,
                 " is not supported (expected ", kManifestVersion, "); run petseg prepare again");
    m.created = doc.value("created", "");
    m.layout = doc.value("layout", "oxford-pets");
    const Choices& known = layout_choices();
    PETSEG_CHECK(m.layout != kAutoLayout && std::count(known.begin(), known.end(), m.layout),
                 path.string(), ": unknown layout \"", m.layout, "\"; run petseg prepare again");
    m.classes = doc.value("classes", std::vector<std::string>{});
    m.mask_encoding = doc.value("mask_encoding", "");
    if (!m.mask_encoding.empty()) parse_mask_encoding(m.mask_encoding);
    m.class_colors = doc.value("class_colors", "");
    m.seeded_split = doc.value("seeded_split", false);
    for (const auto& j : doc.at("samples")) m.samples.push_back(sample_from_json(j, path, m.layout == "oxford-pets"));
    for (const auto& j : doc.at("strays")) {
      m.strays.push_back({j.at("path").get<std::string>(), j.value("reason_code", ""), j.value("reason", ""),
                          j.value("quarantined_to", "")});
    }
    m.split_errors = doc.value("split_errors", std::vector<std::string>{});
    return m;
  } catch (const json::exception& e) {
    PETSEG_FAIL(path.string(), ": malformed manifest (", e.what(), "); run petseg prepare again");
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
