// The layout registry, layout resolution (forced, recorded by prepare, or recognised), the seeded split, and the
// small readers every layout shares.
#include "data/layout.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "core/fs.h"
#include "core/random.h"
#include "data/folders.h"
#include "data/oxford_pets.h"
#include "data/voc.h"

namespace petseg::data {
namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::string trimmed(std::string line) {
  const size_t b = line.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return line.substr(b, line.find_last_not_of(" \t\r") - b + 1);
}

}  // namespace

const std::vector<const Layout*>& layouts() {
  static const std::vector<const Layout*> all = {&oxford_pets_layout(), &voc_layout(), &folders_layout()};
  return all;
}

const Choices& layout_choices() {
  static const Choices choices = [] {
    Choices c = {kAutoLayout};
    for (const Layout* l : layouts()) c.push_back(l->name());
    return c;
  }();
  return choices;
}

const Layout& layout_named(const std::string& name) {
  for (const Layout* l : layouts()) {
    if (name == l->name()) return *l;
  }
  PETSEG_FAIL("unknown --layout \"", name, "\"; valid: ", join_choices(layout_choices()));
}

const Layout& resolve_layout(const fs::path& root, const std::string& option, const Manifest* manifest) {
  check_choice("--layout", option, layout_choices());
  const Layout* chosen = nullptr;
  if (option != kAutoLayout) {
    chosen = &layout_named(option);
    PETSEG_CHECK(!manifest || manifest->layout == option, (root / kManifestName).string(), " was written for the ",
                 manifest->layout, " layout, not ", option, "; run petseg prepare --layout ", option, " again");
  } else if (manifest) {
    chosen = &layout_named(manifest->layout);
  } else {
    for (const Layout* l : layouts()) {
      if (l->matches(root)) {
        chosen = l;
        break;
      }
    }
    if (!chosen) {
      std::string looked;
      for (const Layout* l : layouts())
        looked += (looked.empty() ? "" : "; ") + l->looks_for() + " (" + l->name() + ")";
      PETSEG_FAIL(root.string(), " holds no data set layout petseg reads; looked for ", looked,
                  ". --layout forces one; petseg synth makes a set of any of them");
    }
  }
  PETSEG_CHECK(chosen->matches(root), root.string(), " does not hold the ", chosen->title(), " layout (expected ",
               chosen->looks_for(), ")");
  return *chosen;
}

std::vector<bool> seeded_validation(const std::vector<std::string>& stems, uint64_t seed, double fraction) {
  PETSEG_CHECK(fraction >= 0 && fraction < 1, "--val-fraction must be in [0, 1), got ", fraction);
  const size_t n = stems.size();
  // Each stem's draw depends on the seed and the stem only, so the order of a folder listing never matters.
  std::vector<std::pair<uint64_t, size_t>> keyed;
  for (size_t i = 0; i < n; ++i) keyed.push_back({mix_seed(seed, fnv1a(stems[i])), i});
  std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : stems[a.second] < stems[b.second];
  });
  size_t n_val = size_t(std::llround(fraction * double(n)));
  if (fraction > 0 && n >= 2) n_val = std::clamp<size_t>(n_val, 1, n - 1);
  std::vector<bool> val(n, false);
  for (size_t k = 0; k < n_val; ++k) val[keyed[k].second] = true;
  return val;
}

std::string relative_to(const fs::path& root, const fs::path& path) {
  return path.lexically_relative(root).generic_string();
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool common_stray(const std::string& filename, std::string* code, std::string* reason) {
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

StemFile read_stem_file(const fs::path& path) {
  StemFile out;
  std::istringstream in(read_text_file(path));
  std::string line;
  std::set<std::string> seen;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    line = trimmed(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = path.filename().string() + ":" + std::to_string(lineno) + ": ";
    if (line.find_first_of(" \t/\\") != std::string::npos || line == "." || line == "..") {
      out.errors.push_back(where + "\"" + line + "\" is not a plain file stem");
    } else if (!seen.insert(line).second) {
      out.errors.push_back(where + "\"" + line + "\" is listed twice");
    } else {
      out.stems.push_back(line);
    }
  }
  return out;
}

std::vector<std::string> read_class_names(const fs::path& path) {
  std::istringstream in(read_text_file(path));
  std::vector<std::string> names;
  std::set<std::string> seen;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    line = trimmed(line);
    if (line.empty() || line[0] == '#') continue;
    PETSEG_CHECK(seen.insert(line).second, path.string(), ":", lineno, ": class \"", line, "\" is listed twice");
    names.push_back(line);
  }
  PETSEG_CHECK(!names.empty(), path.string(), ": no class names (one per line, in class-id order)");
  PETSEG_CHECK(int(names.size()) <= kMaxClasses, path.string(), ": ", names.size(), " classes; at most ", kMaxClasses,
               " fit 8-bit masks (255 is the ignore index)");
  return names;
}

}  // namespace petseg::data
