// Per-class pixel counts over a data set's masks: what median-frequency class weights (train/class_weights.h) are
// computed from, counted by prepare for its manifest or once over an unprepared set.
#pragma once

#include <cstdint>
#include <vector>

#include "data/transforms.h"
#include "image/image_io.h"

namespace petseg::data {

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
  // Adds another partial count of the same classes (counts made in parallel).
  void add(const ClassPixelCounts& other);
  int num_classes() const { return int(class_pixels.size()); }
};

}  // namespace petseg::data
