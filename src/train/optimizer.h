// The optimizers training uses: torch::optim::SGD and Adam with their per-parameter loops replaced by ATen's fused
// kernels (_fused_sgd_, _fused_adam_: one call per device and dtype, as torch.optim's fused=True), their state kept in
// libtorch's SGDParamState / AdamParamState so checkpoints (train/checkpoint.h) read and write them unchanged.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "train/config.h"

namespace petseg::train {

// An optimizer whose step takes the loss scaler's verdict on the device (torch.optim's _step_supports_amp_scaling):
// its kernels divide each gradient by grad_scale and change nothing when found_inf is 1, so a skipped step needs no
// read-back. The fused optimizers of make_optimizer are; train/grad_scaler.h uses it.
class AmpScalingStep {
 public:
  virtual ~AmpScalingStep() = default;
  // grad_scale: [1] float, or undefined when the gradients are already unscaled; found_inf: [1] float, 0 or 1 (the
  // kernels skip only on exactly 1).
  virtual void step_scaled(const at::Tensor& grad_scale, const at::Tensor& found_inf) = 0;
};

// spec.optimizer's optimizer over `params`: SGD (spec.momentum, spec.weight_decay, dampening 0, no Nesterov)
// or Adam (L2 weight decay as torch.optim.Adam, no AMSGrad), at spec.lr. fused: false gives libtorch's own
// per-parameter loops, the same arithmetic (benchmarks and tests compare the two). The fused ones are
// torch::optim::SGD / torch::optim::Adam (dynamic_cast works) and AmpScalingStep.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const RunSpec& spec,
                                                        const std::vector<at::Tensor>& params, bool fused = true);

// Parameters that train at lr * lr_mult.
struct ParamGroup {
  std::vector<at::Tensor> params;
  double lr_mult = 1;
};
// The same over parameter groups (empty ones left out), each at spec.lr * its lr_mult.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const RunSpec& spec, const std::vector<ParamGroup>& groups,
                                                        bool fused = true);
// Every group of `optimizer` (made from `groups`, empty ones left out as make_optimizer does) at lr * its lr_mult.
void set_learning_rates(torch::optim::Optimizer& optimizer, const std::vector<ParamGroup>& groups, double lr);

// Brings what a fused optimizer keeps only on the device into its libtorch state, for a checkpoint: fused Adam counts
// its steps in device tensors and its AdamParamState::step() misses the steps a loss scaler skipped since the last
// sync. One read-back when there were such steps, nothing otherwise (and nothing for other optimizers).
void sync_optimizer_state(torch::optim::Optimizer& optimizer);

}  // namespace petseg::train
