// The training step shared by train, DataParallel's replicas and bench model.
#include "train/step.h"

#include <ATen/ops/cross_entropy_loss.h>
#include <torch/optim/optimizer.h>

#include "core/autocast.h"
#include "core/labels.h"
#include "distributed/reducer.h"
#include "train/grad_scaler.h"
#include "train/progress.h"
#include "train/runner.h"

namespace petseg::train {

at::Tensor segmentation_loss(const model::SegmentationOutput& y, const at::Tensor& target, double aux_weight,
                             const at::Tensor& normalizer) {
  const auto reduction = normalizer.defined() ? at::Reduction::Sum : at::Reduction::Mean;
  at::Tensor loss = at::cross_entropy_loss(y.out.to(at::kFloat), target, {}, reduction, kIgnoreIndex);
  if (y.aux.defined()) {
    loss = loss + aux_weight * at::cross_entropy_loss(y.aux.to(at::kFloat), target, {}, reduction, kIgnoreIndex);
  }
  return normalizer.defined() ? loss / normalizer.to(loss.device()) : loss;
}

at::Tensor forward_backward(Runner& runner, at::Tensor x, const at::Tensor& target, double aux_weight,
                            const StepPrecision& precision, const at::Tensor& normalizer, PhaseTimer* timer) {
  if (precision.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor loss;
  {
    AutocastGuard autocast(x.device().type(), precision.dtype, precision.amp);  // thread-local state
    loss = segmentation_loss(runner.forward(x), target, aux_weight, normalizer);
  }
  if (timer) timer->lap(&report::PhaseTimes::forward);
  if (precision.loss_scale.defined()) {
    (loss * precision.loss_scale.to(loss.device(), /*non_blocking=*/true)).backward();
  } else {
    loss.backward();
  }
  return loss.detach();
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
  at::Tensor loss;
  if (data_parallel) {
    // Forward and backward of every chunk run together on their devices: counted as forward time.
    loss = data_parallel->forward_backward(x, target, aux_weight, p);
    lap(&report::PhaseTimes::forward);
  } else {
    loss = forward_backward(*runner, x, target, aux_weight, p, /*normalizer=*/{}, timer);
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
  return loss;
}

}  // namespace petseg::train
