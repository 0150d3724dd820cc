// The manifest's reader and writer (data/manifest.h).
#include "data/manifest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/choices.h"
#include "core/fs.h"
#include "core/json_check.h"
#include "data/layout.h"
#include "data/oxford_pets.h"

namespace petseg::data {
namespace {

using json = nlohmann::json;

// Manifests written before there were layouts are the pets', whose samples name no paths.
constexpr const char* kPetsLayout = "oxford-pets";

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


json sample_to_json(const ManifestSample& s, bool pets) {
  json j = {{"name", s.name}, {"splits", s.splits}, {"accepted", s.accepted}, {"width", s.width}, {"height", s.height}};
  if (pets) {
    j["class_id"] = s.class_id;
    j["species"] = s.species;
    j["breed_id"] = s.breed_id;
  } else {  // the pets' paths follow from the name; other layouts' images have several extensions
    j["image"] = s.image;
    j["mask"] = s.mask;
  }
  if (!s.accepted) {
    j["reason_code"] = s.reason_code;
    j["reason"] = s.reason;
  }
  if (!s.conversions.empty()) j["conversions"] = s.conversions;
  if (!s.warning.empty()) j["warning"] = s.warning;
  if (!s.quarantined.empty()) j["quarantined"] = s.quarantined;
  if (!s.mask_pixels.empty()) {
    json values = json::object();  // one short line per value: a manifest of the real pets has 7390 of them
    for (const auto& [value, pixels] : s.mask_pixels) values[std::to_string(value)] = pixels;
    j["mask_pixels"] = values;
  }
  return j;
}

}  // namespace

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
    m.layout = doc.value("layout", kPetsLayout);
    const Choices& known = layout_choices();
    PETSEG_CHECK(m.layout != kAutoLayout && std::count(known.begin(), known.end(), m.layout),
                 path.string(), ": unknown layout \"", m.layout, "\"; run petseg prepare again");
    m.classes = doc.value("classes", std::vector<std::string>{});
    m.mask_encoding = doc.value("mask_encoding", "");
    if (!m.mask_encoding.empty()) parse_mask_encoding(m.mask_encoding);
    m.class_colors = doc.value("class_colors", "");
    m.seeded_split = doc.value("seeded_split", false);
    for (const auto& j : doc.at("samples")) m.samples.push_back(sample_from_json(j, path, m.layout == kPetsLayout));
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

void write_manifest(const fs::path& path, const Manifest& m) {
  json samples = json::array();
  for (const auto& s : m.samples) samples.push_back(sample_to_json(s, m.layout == kPetsLayout));
  json strays = json::array();
  for (const auto& s : m.strays) {
    json j = {{"path", s.path}, {"reason_code", s.reason_code}, {"reason", s.reason}};
    if (!s.quarantined_to.empty()) j["quarantined_to"] = s.quarantined_to;
    strays.push_back(j);
  }
  json doc = {
      {"format", "petseg-manifest"}, {"version", m.version}, {"created", m.created},          {"layout", m.layout},
      {"samples", samples},          {"strays", strays},     {"split_errors", m.split_errors}};
  if (!m.classes.empty()) doc["classes"] = m.classes;
  if (!m.mask_encoding.empty()) doc["mask_encoding"] = m.mask_encoding;
  if (!m.class_colors.empty()) doc["class_colors"] = m.class_colors;
  if (m.seeded_split) doc["seeded_split"] = true;
  write_file_atomic(path, doc.dump(1) + "\n");
}

}  // namespace petseg::data
