// Mask encodings: the class-colours file, value checks, colour mapping and the stored-value lookups.
#include "data/masks.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "core/check.h"
#include "core/choices.h"
#include "core/fs.h"
#include "core/labels.h"

namespace petseg::data {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// "R,G,B name" (spaces allowed around the commas) -> colour and name; false when the line is not of that form.
bool parse_color_line(const std::string& line, uint32_t* rgb, std::string* name) {
  size_t pos = 0;
  uint32_t packed = 0;
  for (int c = 0; c < 3; ++c) {
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
    const size_t start = pos;
    while (pos < line.size() && std::isdigit(static_cast<unsigned char>(line[pos]))) ++pos;
    if (pos == start || pos - start > 3) return false;
    const int v = std::stoi(line.substr(start, pos - start));
    if (v > 255) return false;
    packed = packed << 8 | uint32_t(v);
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
    if (c < 2) {
      if (pos >= line.size() || line[pos] != ',') return false;
      ++pos;
    }
  }
  *rgb = packed;
  *name = trim(line.substr(pos));
  return !name->empty();
}

}  // namespace

const char* mask_encoding_name(MaskEncoding encoding) {
  switch (encoding) {
    case MaskEncoding::kTrimap:
      return "trimap";
    case MaskEncoding::kClassIndex:
      return "class-index";
    default:
      return "rgb-colors";
  }
}

MaskEncoding parse_mask_encoding(const std::string& name) {
  check_choice("mask encoding", name, {"trimap", "class-index", "rgb-colors"});
  return name == "trimap"        ? MaskEncoding::kTrimap
         : name == "class-index" ? MaskEncoding::kClassIndex
                                 : MaskEncoding::kRgbColors;
}

std::string format_color(uint32_t rgb) { return detail::str_cat(rgb >> 16 & 255, ",", rgb >> 8 & 255, ",", rgb & 255); }

ClassColors read_class_colors(const std::filesystem::path& file) {
  PETSEG_CHECK(std::filesystem::is_regular_file(file), "class colours file ", file.string(), " does not exist");
  return parse_class_colors(read_text_file(file), file);
}

ClassColors parse_class_colors(const std::string& text, const std::filesystem::path& file) {
  ClassColors out;
  out.file = file;
  std::istringstream in(text);
  std::string line;
  std::set<std::string> names;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = detail::str_cat(file.string(), ":", lineno, ": ");
    uint32_t rgb = 0;
    std::string name;
    PETSEG_CHECK(parse_color_line(line, &rgb, &name), where, "expected \"R,G,B name\" (0..255 each), got \"", line,
                 "\"");
    PETSEG_CHECK(!out.class_of.count(rgb), where, "colour ", format_color(rgb), " is listed twice");
    if (name == "ignore") {
      out.class_of[rgb] = uint8_t(kIgnoreIndex);
      continue;
    }
    PETSEG_CHECK(names.insert(name).second, where, "class \"", name, "\" is listed twice");
    PETSEG_CHECK(int(out.class_names.size()) < kMaxClasses, where, "more than ", kMaxClasses, " classes");
    out.class_of[rgb] = uint8_t(out.class_names.size());
    out.class_names.push_back(name);
  }
  PETSEG_CHECK(!out.class_names.empty(), file.string(), ": no classes (expected \"R,G,B name\" lines)");
  return out;
}

int find_value_beyond(const image::Image& mask, int num_classes) {
  if (num_classes <= 0) return -1;
  // Branch-free pass first (it vectorizes); the culprit is only looked for in a bad mask.
  uint8_t bad = 0;
  for (uint8_t v : mask.pixels) bad |= static_cast<uint8_t>(v >= num_classes && v != kIgnoreIndex);
  if (!bad) return -1;
  for (uint8_t v : mask.pixels) {
    if (v >= num_classes && v != kIgnoreIndex) return v;
  }
  return -1;
}

int max_class_value(const image::Image& mask) {
  int top = -1;
  for (uint8_t v : mask.pixels) {
    if (v != kIgnoreIndex) top = std::max(top, int(v));
  }
  return top;
}

int64_t map_class_colors(const image::Image& rgb, const ClassColors& colors, image::Image& out) {
  PETSEG_CHECK(rgb.channels == 3, "map_class_colors needs an RGB image");
  out = image::Image(rgb.width, rgb.height, 1);
  const size_t n = size_t(rgb.width) * rgb.height;
  // Masks are runs of one colour: remember the last lookup.
  uint32_t last = 0xFFFFFFFFu;
  uint8_t last_class = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &rgb.pixels[i * 3];
    const uint32_t c = uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2];
    if (c != last) {
      const auto it = colors.class_of.find(c);
      if (it == colors.class_of.end()) return int64_t(i);
      last = c;
      last_class = it->second;
    }
    out.pixels[i] = last_class;
  }
  return -1;
}

MaskLut mask_lut(MaskEncoding encoding, int num_classes, BorderMode border) {
  if (encoding == MaskEncoding::kTrimap) return trimap_lut(border);
  MaskLut lut;
  lut.fill(uint8_t(kIgnoreIndex));
  const int n = num_classes > 0 ? std::min(num_classes, kMaxClasses) : kMaxClasses;
  for (int v = 0; v < n; ++v) lut[size_t(v)] = uint8_t(v);
  return lut;
}

}  // namespace petseg::data
