// How a mask file stores its labels (the pets' trimaps, class indices, RGB colours), the class-colours file that
// names the colours, the checks on stored values, and the lookup from stored values to the loader's class indices.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/transforms.h"
#include "image/image_io.h"

namespace petseg::data {

enum class MaskEncoding {
  kTrimap,      // Oxford-IIIT Pet: 1 pet, 2 background, 3 border (mapped by --border)
  kClassIndex,  // one channel (gray or palette indices): the class id, kIgnoreIndex (255) for "ignore"
  kRgbColors,   // RGB colours named by a class-colours file
};
const char* mask_encoding_name(MaskEncoding encoding);  // "trimap", "class-index", "rgb-colors"
MaskEncoding parse_mask_encoding(const std::string& name);

// Class ids are 0..254 in 8-bit masks: 255 is the ignore index.
inline constexpr int kMaxClasses = 255;

// A class-colours file: one "R,G,B name" per line ('#' comments and blank lines skipped); the n-th named colour is
// class n. A colour named "ignore" maps to the ignore index instead of a class (VOC's border colour, for instance).
struct ClassColors {
  std::filesystem::path file;
  std::vector<std::string> class_names;
  std::unordered_map<uint32_t, uint8_t> class_of;  // 0xRRGGBB -> class id or kIgnoreIndex
};
ClassColors read_class_colors(const std::filesystem::path& file);
ClassColors parse_class_colors(const std::string& text, const std::filesystem::path& file);
std::string format_color(uint32_t rgb);  // "R,G,B"

// What decoding a sample's mask needs besides its bytes.
struct MaskSpec {
  MaskEncoding encoding = MaskEncoding::kTrimap;
  int num_classes = 0;                        // kClassIndex: valid values 0..num_classes-1 (and 255); 0: any
  std::shared_ptr<const ClassColors> colors;  // kRgbColors
};

// The first stored value that is neither a class below `num_classes` nor the ignore index; -1 when there is none.
int find_value_beyond(const image::Image& mask, int num_classes);
// The largest class value a mask holds (the ignore index aside); -1 when it holds only ignore.
int max_class_value(const image::Image& mask);
// Maps an RGB image's colours to class indices into `out` (1 channel); returns -1, or the index of the first pixel
// whose colour the file does not name (`out` is then incomplete).
int64_t map_class_colors(const image::Image& rgb, const ClassColors& colors, image::Image& out);

// The lookup the loader applies to a decoded mask: trimaps by `border`; class indices (RGB masks are class indices
// once decoded) as they are, values beyond `num_classes` as the ignore index.
MaskLut mask_lut(MaskEncoding encoding, int num_classes, BorderMode border);

}  // namespace petseg::data
