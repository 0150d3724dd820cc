// The ONLY place that tests libtorch version macros: everything that differs between Debian's libtorch 1.13
// (CPU) and the 2.x CUDA builds of the PyTorch wheels is wrapped here.
#pragma once

#include <torch/version.h>

#define PETSEG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace petseg::compat {

inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

}  // namespace petseg::compat
