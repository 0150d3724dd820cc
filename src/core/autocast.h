// Mixed precision for a scope, as Python's `with torch.autocast(device_type, dtype)`: ops that gain from it run
// in bf16/fp16, the rest in fp32. Restores the previous state and drops the cast cache on exit.
#pragma once

#include "core/compat.h"

namespace petseg {

class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, at::ScalarType dtype, bool enabled = true)
      : device_(device),
        active_(enabled),
        previous_enabled_(compat::autocast_enabled(device)),
        previous_dtype_(compat::autocast_dtype(device)) {
    if (!active_) return;
    compat::set_autocast(device_, true, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::set_autocast(device_, previous_enabled_, previous_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_;
  bool previous_enabled_;
  at::ScalarType previous_dtype_;
};

}  // namespace petseg
