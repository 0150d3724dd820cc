// The ONLY place that tests libtorch version macros: everything that differs between Debian's libtorch 1.13
// (CPU) and the 2.x CUDA builds of the PyTorch wheels is wrapped here.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#define PETSEG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace petseg::compat {

inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

// Autocast state per device type: 2.4 replaced the per-device setters (set_cpu_enabled, set_enabled, ...) with
// device-generic ones.
inline bool autocast_enabled(c10::DeviceType device) {
#if PETSEG_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

inline at::ScalarType autocast_dtype(c10::DeviceType device) {
#if PETSEG_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype()
                                        : at::autocast::get_autocast_gpu_dtype();
#endif
}

inline void set_autocast(c10::DeviceType device, bool enabled, at::ScalarType dtype) {
#if PETSEG_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

}  // namespace petseg::compat

// The autograd profiler that writes a Chrome trace directly (RecordProfile) lives in profiler_legacy.h, which
// newer libtorch builds may drop; profiling is then reported as unavailable instead of failing the build.
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#define PETSEG_HAS_RECORD_PROFILE 1
#else
#define PETSEG_HAS_RECORD_PROFILE 0
#endif
