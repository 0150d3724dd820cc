// Dynamic loss scaling for fp16 autocast, with torch.amp.GradScaler's semantics (libtorch's C++ API has none):
// the loss is multiplied by the scale before backward; before the optimizer step the gradients are divided by it
// and checked for inf/NaN; a step with a non-finite gradient is skipped and the scale multiplied by
// backoff_factor; after growth_interval finite steps in a row the scale is multiplied by growth_factor. The scale
// and the count of finite steps stay on the gradients' device (the same ATen kernels as Python's), so only the
// skip decision reads back to the host, once per step, as in Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <cstdint>

namespace petseg::train {

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16, as torch.amp.GradScaler
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class GradScaler {
 public:
  GradScaler(at::Device device, GradScalerOptions options = {});
  // loss * scale (the loss to call backward on).
  at::Tensor scale(const at::Tensor& loss) const;
  // The scale as a tensor on the device (DataParallel multiplies each chunk's loss by it).
  const at::Tensor& scale_tensor() const { return scale_; }
  // Divides every gradient of the optimizer's parameters by the scale, in place, and records whether any is inf
  // or NaN. At most once per step (step() calls it if it was not called, e.g. before gradient clipping).
  void unscale(torch::optim::Optimizer& optimizer);
  // Unscales if needed, then steps the optimizer unless a gradient was not finite. Returns whether it stepped.
  bool step(torch::optim::Optimizer& optimizer);
  // Adjusts the scale for the next step (backoff after a skipped step, growth after growth_interval good ones).
  void update();

  double current_scale() const;    // reads back from the device
  int64_t growth_tracker() const;  // finite steps in a row since the last change of scale
  // Restores a saved state (a resumed run continues with the scale it had).
  void load(double scale, int64_t growth_tracker);
  const GradScalerOptions& options() const { return options_; }

 private:
  GradScalerOptions options_;
  at::Tensor scale_;           // [1] float on the device
  at::Tensor growth_tracker_;  // [1] int32 on the device
  at::Tensor found_inf_;       // [1] float on the device: this step's verdict, summed over gradient groups
  bool unscaled_ = false;
};

}  // namespace petseg::train
