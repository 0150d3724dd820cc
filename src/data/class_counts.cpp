// Counting a mask's classes: one histogram of its stored values (256 bins), mapped through the lut once per value,
// not once per pixel.
#include "data/class_counts.h"

#include <array>
#include <mutex>

#include "core/check.h"
#include "core/parallel.h"
#include "data/dataset.h"

namespace petseg::data {

MaskValuePixels mask_value_pixels(const image::Image& stored) {
  PETSEG_CHECK(stored.channels == 1, "class counts: a mask must have 1 channel, got ", stored.channels);
  PETSEG_CHECK(stored.pixels.size() == size_t(stored.width) * size_t(stored.height),
               "class counts: the mask's pixels do not match its size ", stored.width, "x", stored.height);
  std::array<int64_t, 256> histogram{};
  for (uint8_t v : stored.pixels) ++histogram[v];
  MaskValuePixels values;
  for (size_t v = 0; v < histogram.size(); ++v) {
    if (histogram[v] > 0) values.emplace_back(int(v), histogram[v]);
  }
  return values;
}

void ClassPixelCounts::add(const image::Image& stored, const MaskLut& lut) { add(mask_value_pixels(stored), lut); }

void ClassPixelCounts::add(const MaskValuePixels& values, const MaskLut& lut) {
  std::vector<int64_t> in_mask(class_pixels.size(), 0);
  int64_t labelled = 0;
  for (const auto& [v, pixels] : values) {
    PETSEG_CHECK(v >= 0 && v < int(lut.size()) && pixels >= 0, "class counts: ", pixels, " pixels of mask value ", v,
                 " (values are 0..255)");
    const size_t c = lut[size_t(v)];
    if (pixels == 0 || c >= in_mask.size()) continue;  // absent, ignored, or beyond the classes
    in_mask[c] += pixels;
    labelled += pixels;
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

CountedMasks count_class_pixels(const SegmentationDataset& set, BorderMode border, int threads, size_t first,
                                size_t stride) {
  PETSEG_CHECK(stride >= 1, "class counts: stride must be >= 1");
  std::vector<size_t> mine;
  for (size_t i = first; i < set.size(); i += stride) mine.push_back(i);
  CountedMasks out{ClassPixelCounts(set.num_classes()), 0, {}};
  std::mutex mutex;
  // The pair is checked as the loader checks it; the image only needs its smallest decode (the mask is read whole).
  const MinSizeFn smallest = [](int, int) { return std::make_pair(1, 1); };
  parallel_for(mine.size(), threads, [&](size_t k) {
    thread_local DecodedPair pair;
    const SegmentationSample& s = set[mine[k]];
    try {
      load_pair(s.image, s.mask, pair, smallest, set.mask_spec(s));
    } catch (const SampleError&) {
      std::lock_guard<std::mutex> lock(mutex);
      out.unreadable.push_back(s.name);
      return;
    }
    const MaskValuePixels values = mask_value_pixels(pair.mask);
    std::lock_guard<std::mutex> lock(mutex);
    out.counts.add(values, set.mask_lut(s, border));
    ++out.masks;
  });
  return out;
}

}  // namespace petseg::data
