// What every area agrees on about labels: the ignore index, as torchvision's segmentation references use it: the
// padding of a random crop, the trimap border under --border ignore, the pixels the loss and the metric skip.
#pragma once

#include <cstdint>

namespace petseg {

inline constexpr int64_t kIgnoreIndex = 255;

}  // namespace petseg
