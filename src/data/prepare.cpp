// The prepare step: every pair checked, stray files found, the manifest written atomically, and (quarantine) rejected
// files renamed aside, never deleted, and moved back by restore_quarantine.
#include "data/prepare.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/parallel.h"
#include "data/layout.h"

namespace petseg::data {
namespace {

bool is_pets(const Manifest& m) { return m.layout == "oxford-pets"; }

// --quarantine: rejected samples and stray files MOVED to root/quarantine/<same path>, never overwriting.
void quarantine(const fs::path& root, Manifest& m) {
  const fs::path q = root / "quarantine";
  auto move = [&](const fs::path& from) -> std::string {
    const fs::path to = move_without_overwrite(from, q / from.lexically_relative(root));
    return relative_to(root, from) + " -> " + relative_to(root, to);
  };
  for (ManifestSample& s : m.samples) {
    if (s.accepted) continue;
    for (const std::string& rel : {s.image, s.mask}) {
      const fs::path p = root / rel;
      if (fs::exists(fs::symlink_status(p))) s.quarantined.push_back(move(p));
    }
  }
  for (StrayFile& f : m.strays) {
    const std::string moved = move(root / f.path);
    f.quarantined_to = moved.substr(moved.find(" -> ") + 4);
  }
}

// An earlier manifest, whose layout and colours file "auto" keeps; one that cannot be read is simply replaced.
std::optional<Manifest> earlier_manifest(const fs::path& root) {
  const fs::path path = root / kManifestName;
  if (!fs::exists(path)) return std::nullopt;
  try {
    return read_manifest(path);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// Decodes every sample (a SampleError is its verdict; anything else, out of memory or a bug, reaches the caller)
// and returns the largest class value of the accepted masks (-1: none).
int check_samples(const fs::path& root, Manifest& m, const MaskSpec& spec, int threads) {
  std::atomic<int> top{-1};
  parallel_for(m.samples.size(), threads, [&](size_t i) {
    thread_local DecodedPair pair;
    ManifestSample& s = m.samples[i];
    try {
      load_pair(root / s.image, root / s.mask, pair, {}, spec);
      s.accepted = true;
      s.conversions = pair.image_info.conversions;
      s.warning = pair.image_info.warning;
      s.width = pair.width;
      s.height = pair.height;
      s.mask_pixels = mask_value_pixels(pair.mask);  // what --class-weights auto counts, under any --border
      const int v = spec.encoding == MaskEncoding::kTrimap ? -1 : max_class_value(pair.mask);
      for (int seen = top.load(); v > seen && !top.compare_exchange_weak(seen, v);) {
      }
    } catch (const SampleError& e) {
      s.accepted = false;
      s.reason_code = e.code();
      s.reason = relative_to(root, e.file()) + ": " + e.detail();
    }
  });
  return top.load();
}

}  // namespace

// ------------------------------------------------------------------ prepare

Manifest prepare_dataset(const fs::path& root, const PrepareOptions& options) {
  PETSEG_CHECK(fs::is_directory(root), "data set folder ", root.string(), " does not exist");
  std::optional<Manifest> earlier = options.layout == kAutoLayout ? earlier_manifest(root) : std::nullopt;
  if (earlier && !layout_named(earlier->layout).matches(root)) earlier.reset();  // the folder changed since
  const Layout& layout = resolve_layout(root, options.layout, earlier ? &*earlier : nullptr);
  DatasetOptions dataset;
  dataset.layout = layout.name();
  dataset.class_colors = options.class_colors;
  if (dataset.class_colors.empty() && earlier) dataset.class_colors = earlier->class_colors;
  LayoutLabels labels = layout.labels(root, dataset, nullptr, /*count_if_unknown=*/false);
  LayoutScan scan = layout.scan(root);
  Manifest m;
  m.created = format_now("%Y-%m-%dT%H:%M:%SZ", /*utc=*/true);
  m.layout = layout.name();
  m.samples = std::move(scan.samples);
  m.strays = std::move(scan.strays);
  m.split_errors = std::move(scan.split_errors);
  m.seeded_split = scan.seeded_split;
  const MaskSpec spec{labels.encoding, int(labels.class_names.size()), labels.colors};
  const int top = check_samples(root, m, spec, options.threads);
  if (labels.counted) {
    for (int c = 0; c <= top; ++c) labels.class_names.push_back("class_" + std::to_string(c));
  }
  if (!is_pets(m)) {  // the pets' classes follow from --border
    m.classes = labels.class_names;
    m.mask_encoding = mask_encoding_name(labels.encoding);
    if (labels.colors) m.class_colors = fs::absolute(labels.colors->file).string();
  }
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

namespace {

// What the summary counts: samples per split, accepted, converted, rejected and stray files by reason (with the first
// example of each), quarantined files.
struct Tally {
  std::map<std::string, int> split_counts;
  std::map<std::string, std::pair<int, std::string>> rejected, strays;
  std::map<std::string, int> conversions;
  int accepted = 0, no_split = 0, converted = 0, quarantined = 0;
};

Tally tally(const Manifest& m) {
  Tally t;
  for (const auto& s : m.samples) {
    for (const auto& sp : s.splits) ++t.split_counts[sp];
    if (s.splits.empty() && !m.seeded_split) ++t.no_split;
    if (s.accepted) {
      ++t.accepted;
      if (!s.conversions.empty()) ++t.converted;
      for (const auto& c : s.conversions) ++t.conversions[c];
    } else {
      auto& r = t.rejected[s.reason_code];
      if (r.first++ == 0) r.second = s.name;
    }
    t.quarantined += static_cast<int>(s.quarantined.size());
  }
  for (const auto& f : m.strays) {
    auto& r = t.strays[f.reason_code];
    if (r.first++ == 0) r.second = f.path;
    if (!f.quarantined_to.empty()) ++t.quarantined;
  }
  return t;
}

// The layout, its classes and its split (the pets' summary keeps the lines it always had).
void format_layout(const Manifest& m, const Tally& t, std::ostream& os) {
  if (!is_pets(m)) {
    os << "  layout         " << m.layout;
    if (!m.mask_encoding.empty()) os << " (" << m.mask_encoding << " masks)";
    os << "\n  classes        " << m.classes.size();
    if (!m.classes.empty()) os << ": " << join_choices(m.classes);
    os << "\n";
  }
  if (m.seeded_split) {
    os << "  split          no train.txt/val.txt: --val-fraction of the images, drawn from --seed when loaded\n";
    return;
  }
  os << "  split files   ";
  for (const auto& kv : t.split_counts) os << " " << kv.first << ".txt " << kv.second;
  os << "\n";
}

}  // namespace

std::string format_prepare_summary(const Manifest& m, const fs::path& root) {
  const Tally t = tally(m);
  std::ostringstream os;
  os << "prepare " << root.string() << "\n";
  format_layout(m, t, os);
  os << "  accepted       " << t.accepted << " of " << m.samples.size() << " samples";
  if (t.converted) {
    os << " (" << t.converted << " converted to RGB when loaded:";
    for (const auto& kv : t.conversions) os << " " << kv.first << " " << kv.second;
    os << ")";
  }
  os << "\n";
  os << "  rejected       " << (m.samples.size() - t.accepted) << "\n";
  if (!m.seeded_split) os << "  in no split    " << t.no_split << " images (never used for training or evaluation)\n";
  os << "  stray files    " << m.strays.size() << "\n";
  if (!m.split_errors.empty()) os << "  bad split lines " << m.split_errors.size() << "\n";
  if (!t.rejected.empty() || !t.strays.empty()) {
    os << "\n  " << std::left << std::setw(28) << "problem" << std::setw(7) << "count"
       << "first example\n";
    for (const auto* group : {&t.rejected, &t.strays}) {
      for (const auto& kv : *group) {
        os << "  " << std::setw(28) << kv.first << std::setw(7) << kv.second.first << kv.second.second << "\n";
      }
    }
  }
  for (const auto& e : m.split_errors) os << "  " << e << "\n";
  os << "\n  manifest: " << (root / kManifestName).string() << "\n";
  if (t.quarantined)
    os << "  moved " << t.quarantined << " files to " << (root / "quarantine").string()
       << " (undo: petseg prepare --data " << root.string() << " --restore)\n";
  return os.str();
}

}  // namespace petseg::data
