// Dynamic loss scaling for fp16 autocast, with torch.amp.GradScaler's semantics (libtorch's C++ API has none):
// the loss is multiplied by the scale before backward; before the optimizer step the gradients are divided by it
// and checked for inf/NaN; a step with a non-finite gradient is skipped and the scale multiplied by
// backoff_factor; after growth_interval finite steps in a row the scale is multiplied by growth_factor. The scale,
// the count of finite steps and the skip decision stay on the gradients' device (the same ATen kernels as Python's):
// with a fused optimizer (train/optimizer.h) a step reads nothing back; skipped steps are counted on the device.
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
  // or NaN. At most once per step, and only when the gradients must be unscaled before step() (e.g. for clipping).
  void unscale(torch::optim::Optimizer& optimizer);
  // Steps the optimizer unless a gradient was not finite; once per step. A fused optimizer (AmpScalingStep) gets
  // the scale and the verdict and skips on the device, with no read-back (torch.amp.GradScaler's path for
  // optimizers with _step_supports_amp_scaling). Any other optimizer is unscaled first and the verdict read back,
  // once per step, as Python's GradScaler does for it.
  void step(torch::optim::Optimizer& optimizer);
  // Adjusts the scale for the next step (backoff after a skipped step, growth after growth_interval good ones).
  void update();

  double current_scale() const;    // reads back from the device
  int64_t growth_tracker() const;  // finite steps in a row since the last change of scale
  // Steps skipped (a gradient was inf/NaN) since the last call; restarts the count. Reads back: call it rarely
  // (the trainer does at the end of an epoch).
  int64_t take_skipped_steps();
  // Restores a saved state (a resumed run continues with the scale it had).
  void load(double scale, int64_t growth_tracker);
  const GradScalerOptions& options() const { return options_; }

 private:
  GradScalerOptions options_;
  at::Tensor scale_;           // [1] float on the device
  at::Tensor growth_tracker_;  // [1] int32 on the device
  at::Tensor found_inf_;       // [1] float on the device: this step's verdict, 0 or 1
  at::Tensor skipped_;         // [1] float on the device: steps skipped since take_skipped_steps()
  bool checked_ = false;       // found_inf_ holds this step's verdict
  bool unscaled_ = false;      // the gradients were divided by the scale this step
  bool stepped_ = false;

  // Looks for inf/NaN in every gradient, into found_inf_, multiplying each by inv_scale on the way.
  void check_gradients(torch::optim::Optimizer& optimizer, const at::Tensor& inv_scale);
};

}  // namespace petseg::train
