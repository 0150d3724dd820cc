// The ONLY place (with src/distributed's c10d code) that tests libtorch version macros. petseg builds against libtorch 2.x:
// the PyTorch wheel's (2.11 + CUDA 13.0, pinned by scripts/pyenv.sh) is the tested one; older 2.x releases back to
// 2.4 (device-generic autocast) are accepted by CMake, and what differs between them is wrapped here.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#define PETSEG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

static_assert(PETSEG_TORCH_AT_LEAST(2, 4), "petseg needs libtorch 2.4 or newer (scripts/setup.sh installs 2.11)");

namespace petseg::compat {

inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

inline bool autocast_enabled(c10::DeviceType device) { return at::autocast::is_autocast_enabled(device); }
inline at::ScalarType autocast_dtype(c10::DeviceType device) { return at::autocast::get_autocast_dtype(device); }
inline void set_autocast(c10::DeviceType device, bool enabled, at::ScalarType dtype) {
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
}

}  // namespace petseg::compat
