// The training step shared by train, DataParallel's replicas and bench model.
#include "train/step.h"

#include <torch/optim/optimizer.h>

#include "core/autocast.h"
#include "distributed/reducer.h"
#include "train/grad_scaler.h"
#include "train/progress.h"
#include "train/runner.h"

namespace petseg::train {

at::Tensor segmentation_loss(const Loss& loss, const model::SegmentationOutput& y, const at::Tensor& target,
                             double aux_weight) {
  at::Tensor value = compute_loss(loss, y.out, target);
  if (y.aux.defined()) value = value + aux_weight * compute_loss(loss, y.aux, target);
  return value;
}

model::SegmentationOutput autocast_forward(Runner& runner, at::Tensor x, const StepPrecision& precision) {
  if (precision.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  AutocastGuard autocast(x.device().type(), precision.dtype, precision.amp);  // thread-local state
  return runner.forward(x);
}

void scaled_backward(const at::Tensor& loss, const StepPrecision& precision) {
  if (precision.loss_scale.defined()) {
    (loss * precision.loss_scale.to(loss.device(), /*non_blocking=*/true)).backward();
  } else {
    loss.backward();
  }
}

// The loss is computed outside autocast (compute_loss works in float32 whatever the logits' dtype), as DataParallel
// computes it on the gathered outputs: both paths run the same kernels on the same values.
at::Tensor forward_backward(Runner& runner, at::Tensor x, const at::Tensor& target, const Loss& loss, double aux_weight,
                            const StepPrecision& precision, PhaseTimer* timer) {
  const at::Tensor value =
      segmentation_loss(loss, autocast_forward(runner, std::move(x), precision), target, aux_weight);
  if (timer) timer->lap(&report::PhaseTimes::forward);
  scaled_backward(value, precision);
  return value.detach();
}

at::Tensor TrainStep::operator()(const at::Tensor& images, const at::Tensor& masks, PhaseTimer* timer) const {
  auto lap = [timer](double report::PhaseTimes::*phase) {
    if (timer) timer->lap(phase);
  };
  if (timer) timer->start();
  const at::Tensor x = images.to(device, /*non_blocking=*/images.is_pinned());
  const at::Tensor target = masks.to(device, /*non_blocking=*/masks.is_pinned());
  lap(&report::PhaseTimes::h2d);
  StepPrecision p = precision;
  if (scaler) p.loss_scale = scaler->scale_tensor();
  optimizer->zero_grad(/*set_to_none=*/true);
  at::Tensor value;
  if (data_parallel) {
    // The chunks' forwards, the loss on their gathered outputs and the backward: counted as forward time.
    value = data_parallel->forward_backward(x, target, loss, aux_weight, p);
    lap(&report::PhaseTimes::forward);
  } else {
    value = forward_backward(*runner, x, target, loss, aux_weight, p, timer);
    if (grad_sync) grad_sync->average_gradients();  // DDP's all-reduce, in buckets
    lap(&report::PhaseTimes::backward);
  }
  if (scaler) {
    // Gradients were averaged scaled, so an inf on any rank is an inf on every rank: all skip the same steps. The
    // fused optimizer skips on the device; the skipped steps are counted there and read when the epoch ends.
    scaler->step(*optimizer);
    scaler->update();
  } else {
    optimizer->step();
  }
  lap(&report::PhaseTimes::optimizer);
  return value;
}

}  // namespace petseg::train
