// Class weights for the cross-entropy term (train/loss.h): the --class-weights option (none, auto, or one weight per
// class) and SegNet's median-frequency balancing, "auto", from the training set's per-class pixel counts
// (data/class_counts.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace petseg::train {

struct ClassWeightsOption {
  enum class Kind { kNone, kAuto, kExplicit };
  Kind kind = Kind::kNone;
  std::vector<double> weights;  // kExplicit: one per class, finite, >= 0, not all 0
};

// "none" | "auto" | "w1,w2,...". With num_classes > 0, a list must have exactly that many weights; with 0 (the
// classes are not known yet) only its syntax is checked. Errors name --class-weights.
ClassWeightsOption parse_class_weights(const std::string& value, int num_classes = 0);

// SegNet (Badrinarayanan et al., 2017): freq(c) = class_pixels[c] / image_pixels[c] (the pixels of c over the
// pixels of the images that contain c), weight(c) = median(freq) / freq(c), the median taken over the classes
// present (of an even count: the mean of the two middle ones, as numpy's). A class absent from the counts
// (class_pixels[c] == 0) gets weight 0: the caller warns, since the loss then never learns it.
std::vector<double> median_frequency_weights(const std::vector<int64_t>& class_pixels,
                                             const std::vector<int64_t>& image_pixels);

// The weights as Loss::class_weights wants them: [C] float32 on `device`.
at::Tensor class_weights_tensor(const std::vector<double>& weights, at::Device device);

}  // namespace petseg::train
