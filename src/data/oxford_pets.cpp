// Split files, pair validation, the manifest and the prepare step. Nothing here deletes or rewrites a user's
// file: conversions happen when the loader decodes, quarantine is a rename, the manifest is written atomically.
#include "data/oxford_pets.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/clock.h"
#include "core/fs.h"
#include "core/parallel.h"
#include "core/json_check.h"
#include "core/log.h"
#include "data/transforms.h"

namespace petseg::data {
namespace {

using json = nlohmann::json;

const char* const kSplitFiles[] = {"list", "trainval", "test"};

std::string rel(const fs::path& root, const fs::path& p) { return p.lexically_relative(root).generic_string(); }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

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

// A file in images/ or annotations/trimaps/ that is not part of a usable pair, and why.
bool classify_stray(const std::string& filename, std::string* code, std::string* reason) {
  if (starts_with(filename, "._")) {
    *code = "appledouble";
    *reason = "AppleDouble metadata written by macOS, not an image";
  } else if (ends_with(filename, ".mat")) {
    *code = "matlab_file";
    *reason = "MATLAB .mat file, not an image";
  } else {
    return false;
  }
  return true;
}

json sample_to_json(const ManifestSample& s) {
  json j = {{"name", s.name},         {"splits", s.splits},     {"class_id", s.class_id}, {"species", s.species},
            {"breed_id", s.breed_id}, {"accepted", s.accepted}, {"width", s.width},       {"height", s.height}};
  if (!s.accepted) {
    j["reason_code"] = s.reason_code;
    j["reason"] = s.reason;
  }
  if (!s.conversions.empty()) j["conversions"] = s.conversions;
  if (!s.warning.empty()) j["warning"] = s.warning;
  if (!s.quarantined.empty()) j["quarantined"] = s.quarantined;
  return j;
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

// ------------------------------------------------------------------ manifest I/O

void write_manifest(const fs::path& path, const Manifest& m) {
  json samples = json::array();
  for (const auto& s : m.samples) samples.push_back(sample_to_json(s));
  json strays = json::array();
  for (const auto& s : m.strays) {
    json j = {{"path", s.path}, {"reason_code", s.reason_code}, {"reason", s.reason}};
    if (!s.quarantined_to.empty()) j["quarantined_to"] = s.quarantined_to;
    strays.push_back(j);
  }
  const json doc = {{"format", "petseg-manifest"}, {"version", m.version}, {"created", m.created},
                    {"samples", samples},          {"strays", strays},     {"split_errors", m.split_errors}};
  write_file_atomic(path, doc.dump(1) + "\n");
}

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

// ------------------------------------------------------------------ prepare

namespace {

// The samples the split files name (with their class, species and breed) and the images no split names.
std::map<std::string, ManifestSample> samples_of_splits(const fs::path& annotations, Manifest& m) {
  std::map<std::string, ManifestSample> by_name;
  bool any_split = false;
  for (const char* split : kSplitFiles) {
    const fs::path file = annotations / (std::string(split) + ".txt");
    if (!fs::exists(file)) continue;
    any_split = true;
    SplitFile sf = read_split_file(file);
    for (auto& e : sf.errors) m.split_errors.push_back(std::move(e));
    for (const PetRecord& r : sf.records) {
      ManifestSample& s = by_name[r.name];
      s.name = r.name;
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
void scan_folders(const fs::path& root, std::map<std::string, ManifestSample>& by_name, Manifest& m) {
  const fs::path images = root / "images", trimaps = root / "annotations" / "trimaps";
  auto scan = [&](const fs::path& folder, const char* ext, const char* not_code, const char* not_reason,
                  const std::function<void(const fs::path&, const std::string&)>& on_file) {
    for (const auto& entry : fs::directory_iterator(folder)) {
      if (!entry.is_regular_file()) continue;
      const std::string filename = entry.path().filename().string();
      std::string code, reason;
      if (classify_stray(filename, &code, &reason)) {
        m.strays.push_back({rel(root, entry.path()), code, reason, ""});
      } else if (ends_with(filename, ext)) {
        on_file(entry.path(), filename.substr(0, filename.size() - 4));
      } else {
        m.strays.push_back({rel(root, entry.path()), not_code, not_reason, ""});
      }
    }
  };
  scan(images, ".jpg", "not_an_image", "not a .jpg image", [&](const fs::path&, const std::string& name) {
    if (!by_name.count(name)) by_name[name].name = name;
  });
  scan(trimaps, ".png", "not_a_trimap", "not a .png trimap", [&](const fs::path& path, const std::string& name) {
    if (!by_name.count(name)) m.strays.push_back({rel(root, path), "orphan_trimap", "trimap without image", ""});
  });
}

// --quarantine: rejected samples and stray files MOVED to root/quarantine/<same path>, never overwriting.
void quarantine(const fs::path& root, Manifest& m) {
  const fs::path q = root / "quarantine";
  auto move = [&](const fs::path& from) -> std::string {
    const fs::path to = move_without_overwrite(from, q / from.lexically_relative(root));
    return rel(root, from) + " -> " + rel(root, to);
  };
  for (ManifestSample& s : m.samples) {
    if (s.accepted) continue;
    for (const fs::path& p : {image_path(root, s.name), trimap_path(root, s.name)}) {
      if (fs::exists(fs::symlink_status(p))) s.quarantined.push_back(move(p));
    }
  }
  for (StrayFile& f : m.strays) {
    const std::string moved = move(root / f.path);
    f.quarantined_to = moved.substr(moved.find(" -> ") + 4);
  }
}

}  // namespace

Manifest prepare_dataset(const fs::path& root, const PrepareOptions& options) {
  const fs::path images = root / "images", annotations = root / "annotations", trimaps = annotations / "trimaps";
  PETSEG_CHECK(fs::is_directory(root), "data set folder ", root.string(), " does not exist");
  PETSEG_CHECK(fs::is_directory(images) && fs::is_directory(trimaps), root.string(),
               " does not hold images/ and annotations/trimaps/: extract images.tar.gz and annotations.tar.gz "
               "of the Oxford-IIIT Pet data set into it (or make one with petseg synth)");
  Manifest m;
  m.created = format_now("%Y-%m-%dT%H:%M:%SZ", /*utc=*/true);
  std::map<std::string, ManifestSample> by_name = samples_of_splits(annotations, m);
  scan_folders(root, by_name, m);
  for (auto& kv : by_name) m.samples.push_back(std::move(kv.second));
  // A sample that cannot be read is a verdict (SampleError); anything else (out of memory, a bug) reaches the caller.
  parallel_for(m.samples.size(), options.threads, [&](size_t i) {
    thread_local DecodedPair pair;
    ManifestSample& s = m.samples[i];
    try {
      load_pair(image_path(root, s.name), trimap_path(root, s.name), pair);
      s.accepted = true;
      s.conversions = pair.image_info.conversions;
      s.warning = pair.image_info.warning;
      s.width = pair.width;
      s.height = pair.height;
    } catch (const SampleError& e) {
      s.accepted = false;
      s.reason_code = e.code();
      s.reason = rel(root, e.file()) + ": " + e.detail();
    }
  });

  if (options.quarantine) quarantine(root, m);
  write_manifest(root / kManifestName, m);
  return m;
}

int restore_quarantine(const fs::path& root) {
  // Works from the quarantine folder itself, not the manifest, so it still works after prepare ran again.
  const fs::path q = root / "quarantine";
  PETSEG_CHECK(fs::is_directory(q), "no quarantine folder at ", q.string(), ": nothing to restore");
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(q)) {
    if (e.is_regular_file() || e.is_symlink()) files.push_back(e.path());
  }
  int restored = 0;
  for (const fs::path& from : files) {
    const fs::path to = root / from.lexically_relative(q);
    if (fs::exists(fs::symlink_status(to))) {
      log_warning(to.string(), " already exists; left ", from.string(), " in the quarantine");
      continue;
    }
    fs::create_directories(to.parent_path());
    if (::rename(from.c_str(), to.c_str()) != 0) {
      PETSEG_FAIL("cannot move ", from.string(), " back to ", to.string(), ": ", errno_message(errno));
    }
    ++restored;
  }
  // Drop the folders quarantine made, now empty (deepest first); a folder with anything left in it stays.
  std::vector<fs::path> dirs;
  for (const auto& e : fs::recursive_directory_iterator(q)) {
    if (e.is_directory()) dirs.push_back(e.path());
  }
  std::sort(dirs.rbegin(), dirs.rend());
  dirs.push_back(q);
  for (const auto& d : dirs) {
    std::error_code ec;
    if (fs::is_empty(d, ec)) fs::remove(d, ec);
  }
  return restored;
}

std::string format_prepare_summary(const Manifest& m, const fs::path& root) {
  std::map<std::string, int> split_counts;
  std::map<std::string, std::pair<int, std::string>> rejected, strays;
  std::map<std::string, int> conversions;
  int accepted = 0, no_split = 0, converted = 0, quarantined = 0;
  for (const auto& s : m.samples) {
    for (const auto& sp : s.splits) ++split_counts[sp];
    if (s.splits.empty()) ++no_split;
    if (s.accepted) {
      ++accepted;
      if (!s.conversions.empty()) ++converted;
      for (const auto& c : s.conversions) ++conversions[c];
    } else {
      auto& r = rejected[s.reason_code];
      if (r.first++ == 0) r.second = s.name;
    }
    quarantined += static_cast<int>(s.quarantined.size());
  }
  for (const auto& f : m.strays) {
    auto& r = strays[f.reason_code];
    if (r.first++ == 0) r.second = f.path;
    if (!f.quarantined_to.empty()) ++quarantined;
  }
  std::ostringstream os;
  os << "prepare " << root.string() << "\n";
  os << "  split files   ";
  for (const auto& kv : split_counts) os << " " << kv.first << ".txt " << kv.second;
  os << "\n";
  os << "  accepted       " << accepted << " of " << m.samples.size() << " samples";
  if (converted) {
    os << " (" << converted << " converted to RGB when loaded:";
    for (const auto& kv : conversions) os << " " << kv.first << " " << kv.second;
    os << ")";
  }
  os << "\n";
  os << "  rejected       " << (m.samples.size() - accepted) << "\n";
  os << "  in no split    " << no_split << " images (never used for training or evaluation)\n";
  os << "  stray files    " << m.strays.size() << "\n";
  if (!m.split_errors.empty()) os << "  bad split lines " << m.split_errors.size() << "\n";
  if (!rejected.empty() || !strays.empty()) {
    os << "\n  " << std::left << std::setw(28) << "problem" << std::setw(7) << "count"
       << "first example\n";
    for (const auto& kv : rejected) {
      os << "  " << std::setw(28) << kv.first << std::setw(7) << kv.second.first << kv.second.second << "\n";
    }
    for (const auto& kv : strays) {
      os << "  " << std::setw(28) << kv.first << std::setw(7) << kv.second.first << kv.second.second << "\n";
    }
  }
  for (const auto& e : m.split_errors) os << "  " << e << "\n";
  os << "\n  manifest: " << (root / kManifestName).string() << "\n";
  if (quarantined)
    os << "  moved " << quarantined << " files to " << (root / "quarantine").string()
       << " (undo: petseg prepare --data " << root.string() << " --restore)\n";
  return os.str();
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
