// The prepare step: every pair checked, stray files found, the manifest written atomically, and (quarantine) rejected
// files renamed aside, never deleted, and moved back by restore_quarantine.
#include "data/prepare.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/parallel.h"

namespace petseg::data {
namespace {

using json = nlohmann::json;

std::string rel(const fs::path& root, const fs::path& p) { return p.lexically_relative(root).generic_string(); }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
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

// ------------------------------------------------------------------ manifest writing

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

// ------------------------------------------------------------------ prepare

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

}  // namespace petseg::data
