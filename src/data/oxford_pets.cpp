// Split files, pair validation, reading the manifest and the index built from it. Nothing here deletes or rewrites a
// user's file: conversions happen when the loader decodes.
#include "data/oxford_pets.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/fs.h"
#include "core/json_check.h"
#include "core/log.h"
#include "data/transforms.h"

namespace petseg::data {
namespace {

using json = nlohmann::json;

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

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

fs::path image_path(const fs::path& root, const std::string& name) { return root / "images" / (name + ".jpg"); }
fs::path trimap_path(const fs::path& root, const std::string& name) {
  return root / "annotations" / "trimaps" / (name + ".png");
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

void load_pair(const fs::path& image, const fs::path& trimap, DecodedPair& out, const MinSizeFn& min_size) {
  const std::vector<uint8_t> image_bytes = read_part(image, "image");
  decode_pair_image(image_bytes.data(), image_bytes.size(), image, out, min_size);
  const std::vector<uint8_t> trimap_bytes = read_part(trimap, "trimap");
  decode_pair_trimap(trimap_bytes.data(), trimap_bytes.size(), trimap, out);
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
  if (out.image_info.header.format == image::ImageFormat::kPng) out.image_info.conversions.push_back("png_named_jpg");
}

void decode_pair_trimap(const uint8_t* data, size_t size, const fs::path& trimap, DecodedPair& out) {
  try {
    out.trimap = image::decode_mask(data, size);
  } catch (const Error& e) {
    const std::string what = e.what();
    throw SampleError(starts_with(what, "mask is a colour image") ? "trimap_color" : "unreadable_trimap", trimap, what);
  }
  if (out.trimap.width != out.width || out.trimap.height != out.height) {
    throw SampleError("trimap_size_mismatch", trimap,
                      detail::str_cat("trimap is ", out.trimap.width, "x", out.trimap.height, ", its image is ",
                                      out.width, "x", out.height));
  }
  const int bad = find_invalid_trimap_value(out.trimap);
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
    for (const auto& j : doc.at("samples")) {
      ManifestSample s;
      s.name = j.at("name").get<std::string>();
      PETSEG_CHECK(!s.name.empty() && s.name.find('/') == std::string::npos && s.name != "..", path.string(),
                   ": bad sample name \"", s.name, "\"");
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
      m.samples.push_back(std::move(s));
    }
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

PetDataset PetDataset::from_samples(fs::path root, std::vector<PetSample> samples) {
  PetDataset d;
  d.root_ = std::move(root);
  d.samples_ = std::move(samples);
  return d;
}

PetDataset PetDataset::open(const fs::path& root, Split split) {
  const fs::path annotations = root / "annotations";
  PETSEG_CHECK(fs::is_directory(root / "images") && fs::is_directory(annotations / "trimaps"), root.string(),
               " is not an Oxford-IIIT Pet folder (expected images/ and annotations/trimaps/)");
  const fs::path manifest_path = root / kManifestName;
  PetDataset d;
  d.root_ = root;
  auto wanted = [&](const std::vector<std::string>& splits) {
    if (split == Split::kAll) return !splits.empty();
    return std::find(splits.begin(), splits.end(), split_name(split)) != splits.end();
  };
  if (fs::exists(manifest_path)) {
    const Manifest m = read_manifest(manifest_path);
    const auto manifest_time = fs::last_write_time(manifest_path);
    for (const char* s : kSplitFiles) {
      const fs::path f = annotations / (std::string(s) + ".txt");
      if (fs::exists(f) && fs::last_write_time(f) > manifest_time) {
        log_warning(f.string(), " is newer than ", manifest_path.string(), "; run petseg prepare again");
      }
    }
    size_t rejected = 0;
    for (const auto& s : m.samples) {
      if (!wanted(s.splits)) continue;
      if (!s.accepted) {
        ++rejected;
        continue;
      }
      d.samples_.push_back({s.name, image_path(root, s.name), trimap_path(root, s.name), s.class_id});
    }
    d.validated_ = true;
    if (rejected) log_info(manifest_path.string(), ": skipping ", rejected, " rejected samples of ", split_name(split));
  } else {
    std::vector<PetRecord> records;
    const std::vector<std::string> files = split == Split::kAll ? std::vector<std::string>{"trainval", "test"}
                                                                : std::vector<std::string>{split_name(split)};
    for (const std::string& name : files) {
      const fs::path f = annotations / (name + ".txt");
      PETSEG_CHECK(fs::exists(f), "split file ", f.string(), " is missing");
      SplitFile sf = read_split_file(f);
      for (const auto& e : sf.errors) log_warning(e);
      records.insert(records.end(), sf.records.begin(), sf.records.end());
    }
    for (const auto& r : records)
      d.samples_.push_back({r.name, image_path(root, r.name), trimap_path(root, r.name), r.class_id});
    log_info("no ", kManifestName, " in ", root.string(),
             ": samples are checked as they load (petseg prepare checks them once)");
  }
  PETSEG_CHECK(!d.samples_.empty(), "no usable samples for split ", split_name(split), " in ", root.string());
  return d;
}

}  // namespace petseg::data
