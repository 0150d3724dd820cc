// One training step, the same code for `petseg train`, every --data-parallel replica and `bench model`: the batch to
// the device, forward under autocast, the segmentation loss (--loss, train/loss.h), backward (scaled under fp16),
// DDP's gradient all-reduce, and the optimizer's step through the loss scaler. What the bench times is what training
// runs.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "train/loss.h"

namespace torch::optim {
class Optimizer;
}
namespace petseg::distributed {
class GradientSync;
}

namespace petseg::model {
struct SegmentationOutput;
}

namespace petseg::train {

class DataParallel;
class GradScaler;
class PhaseTimer;
class Runner;

struct StepPrecision {
  bool amp = false;
  at::ScalarType dtype = at::kBFloat16;
  bool channels_last = false;
  at::Tensor loss_scale;  // fp16: the loss is multiplied by it before backward (undefined: 1)
};

// `loss` on `out`, plus aux_weight times the same criterion on `aux` when the model has an aux head (torchvision's
// reference: criterion(out) + 0.5 * criterion(aux), class weights and all). A float32 scalar on the logits' device.
at::Tensor segmentation_loss(const Loss& loss, const model::SegmentationOutput& y, const at::Tensor& target,
                             double aux_weight);

// The model's forward of `x` (on the runner's device) in the precision's memory format, under its autocast.
model::SegmentationOutput autocast_forward(Runner& runner, at::Tensor x, const StepPrecision& precision);
// backward() of `loss` times precision.loss_scale (fp16's loss scaling; none when it is undefined).
void scaled_backward(const at::Tensor& loss, const StepPrecision& precision);

// Forward of `x` (already on the runner's device) under autocast, the loss against `target`, and backward of the
// loss times precision.loss_scale; gradients accumulate into the model's .grad. Returns the detached, unscaled loss.
// `timer` (may be null) gets the forward lap.
at::Tensor forward_backward(Runner& runner, at::Tensor x, const at::Tensor& target, const Loss& loss, double aux_weight,
                            const StepPrecision& precision, PhaseTimer* timer = nullptr);

// What one optimizer step runs on. The learning rate is the optimizer's (the caller schedules it).
struct TrainStep {
  at::Device device = at::kCPU;
  Loss loss;  // --loss with its class weights (on `device`); the default is today's cross-entropy
  double aux_weight = 0.5;
  StepPrecision precision;                   // its loss_scale comes from `scaler`
  Runner* runner = nullptr;                  // the model, eager or TorchScript
  DataParallel* data_parallel = nullptr;     // set: each batch split over its devices (runner is its primary)
  distributed::GradientSync* grad_sync = nullptr;   // DDP's bucketed all-reduce; null in one process
  torch::optim::Optimizer* optimizer = nullptr;
  GradScaler* scaler = nullptr;              // fp16's dynamic loss scaling; null otherwise

  // One step on a batch (host tensors, pinned ones copied without blocking); `timer` (may be null) gets the h2d,
  // forward, backward and optimizer laps. Returns the detached, unscaled loss on the device.
  at::Tensor operator()(const at::Tensor& images, const at::Tensor& masks, PhaseTimer* timer = nullptr) const;
};

}  // namespace petseg::train
