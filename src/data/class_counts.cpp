// Counting a mask's classes: one histogram of its stored values (256 bins), mapped through the lut once per value,
// not once per pixel.
#include "data/class_counts.h"

#include <array>

#include "core/check.h"

namespace petseg::data {

void ClassPixelCounts::add(const image::Image& stored, const MaskLut& lut) {
  PETSEG_CHECK(stored.channels == 1, "class counts: a mask must have 1 channel, got ", stored.channels);
  PETSEG_CHECK(stored.pixels.size() == size_t(stored.width) * size_t(stored.height),
               "class counts: the mask's pixels do not match its size ", stored.width, "x", stored.height);
  std::array<int64_t, 256> histogram{};
  for (uint8_t v : stored.pixels) ++histogram[v];
  std::vector<int64_t> in_mask(class_pixels.size(), 0);
  int64_t labelled = 0;
  for (size_t v = 0; v < histogram.size(); ++v) {
    const size_t c = lut[v];
    if (histogram[v] == 0 || c >= in_mask.size()) continue;  // absent, ignored, or beyond the classes
    in_mask[c] += histogram[v];
    labelled += histogram[v];
  }
  for (size_t c = 0; c < in_mask.size(); ++c) {
    if (in_mask[c] == 0) continue;
    class_pixels[c] += in_mask[c];
    image_pixels[c] += labelled;
  }
}

void ClassPixelCounts::add(const ClassPixelCounts& other) {
  PETSEG_CHECK(other.num_classes() == num_classes(), "class counts: adding counts of ", other.num_classes(),
               " classes to counts of ", num_classes());
  for (size_t c = 0; c < class_pixels.size(); ++c) {
    class_pixels[c] += other.class_pixels[c];
    image_pixels[c] += other.image_pixels[c];
  }
}

}  // namespace petseg::data
