// Per-class pixel counts over a data set's masks: what median-frequency class weights (train/class_weights.h) are
// computed from. prepare records each accepted mask's stored values in the manifest (MaskValuePixels), so the counts
// of any split under any --border or --ignore-index follow without decoding again; an unprepared set is counted from
// its masks (count_class_pixels).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/transforms.h"
#include "image/image_io.h"

namespace petseg::data {

class SegmentationDataset;

// The pixels of each value a decoded mask holds (a trimap's 1..3; class indices, 255 = ignore), in increasing order
// of value, absent values left out. Stored values, not classes: the lut that makes them classes depends on the run's
// --border and --ignore-index, applied where the counts are used.
using MaskValuePixels = std::vector<std::pair<int, int64_t>>;
MaskValuePixels mask_value_pixels(const image::Image& stored);

struct ClassPixelCounts {
  explicit ClassPixelCounts(int num_classes = 0)
      : class_pixels(size_t(num_classes)), image_pixels(size_t(num_classes)) {}

  // [C] labelled pixels of class c, over every mask added.
  std::vector<int64_t> class_pixels;
  // [C] labelled pixels of the masks that contain class c (SegNet's "pixels of the images where c is present").
  // Ignored pixels count in neither: the loss never sees them, and a wide ignore border (VOC's) would otherwise
  // lower the frequency of every class that touches it.
  std::vector<int64_t> image_pixels;

  // Adds one mask as the loader reads it: `stored` (1 channel, the file's values) through `lut`
  // (SegmentationDataset::mask_lut); a value the lut maps to kIgnoreIndex or beyond the classes is not labelled.
  void add(const image::Image& stored, const MaskLut& lut);
  // The same from the mask's value counts (values outside 0..255 are an error).
  void add(const MaskValuePixels& values, const MaskLut& lut);
  // Adds another partial count of the same classes (counts made in parallel).
  void add(const ClassPixelCounts& other);
  int num_classes() const { return int(class_pixels.size()); }
};

struct CountedMasks {
  ClassPixelCounts counts;
  int64_t masks = 0;                    // masks counted
  std::vector<std::string> unreadable;  // samples left out: their pair cannot be read (as the loader skips them)
};

// Decodes the masks of `set`'s samples first, first + stride, ... (one rank's share, summed over ranks afterwards)
// and counts them through set.mask_lut(sample, border), on `threads` threads (0: one per core).
CountedMasks count_class_pixels(const SegmentationDataset& set, BorderMode border, int threads = 0, size_t first = 0,
                                size_t stride = 1);

}  // namespace petseg::data
