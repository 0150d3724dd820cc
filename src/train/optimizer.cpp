// FusedSGD and FusedAdam: subclasses of libtorch's SGD and Adam whose step() calls ATen's fused kernels (which have
// CPU and CUDA implementations) the way torch.optim's _fused_sgd / _fused_adam do, and make_optimizer.
#include "train/optimizer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_sgd.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <utility>

#include "core/check.h"
#include "core/choices.h"

namespace petseg::train {
namespace {

// Indices of `tensors` per device and dtype, groups in order of first appearance (torch.optim's
// _group_tensors_by_device_and_dtype): a fused call takes tensors of one device and dtype.
std::vector<std::vector<size_t>> by_device_and_dtype(const std::vector<at::Tensor>& tensors) {
  std::vector<std::pair<std::pair<at::Device, at::ScalarType>, std::vector<size_t>>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::pair<at::Device, at::ScalarType> key{tensors[i].device(), tensors[i].scalar_type()};
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
    if (it == groups.end()) it = groups.insert(groups.end(), {key, {}});
    it->second.push_back(i);
  }
  std::vector<std::vector<size_t>> out;
  for (auto& g : groups) out.push_back(std::move(g.second));
  return out;
}

std::vector<at::Tensor> pick(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& indices) {
  std::vector<at::Tensor> out;
  out.reserve(indices.size());
  for (size_t i : indices) out.push_back(tensors[i]);
  return out;
}

// One of the loss scaler's [1] tensors, copied to each parameter device once per step (torch.optim's DeviceDict);
// nullopt when the step has none (the kernels take an optional, never an undefined tensor).
class PerDevice {
 public:
  explicit PerDevice(const at::Tensor& t) : tensor_(t) {}
  std::optional<at::Tensor> on(const at::Device& device) {
    if (!tensor_.defined()) return std::nullopt;
    for (const auto& [d, t] : copies_) {
      if (d == device) return t;
    }
    return copies_.emplace_back(device, tensor_.to(device, /*non_blocking=*/true)).second;
  }

 private:
  at::Tensor tensor_;
  std::vector<std::pair<at::Device, at::Tensor>> copies_;
};

void check_fusable(const at::Tensor& p, const char* who) {
  PETSEG_CHECK((p.is_cpu() || p.is_cuda()) && at::isFloatingType(p.scalar_type()) && p.layout() == at::kStrided, who,
               ": the fused kernels take dense floating-point parameters on the CPU or CUDA, not ", p.scalar_type(),
               " on ", p.device(), " (make_optimizer(..., /*fused=*/false) gives libtorch's per-parameter loop)");
}

// `t` in the memory layout of `p`: the kernels walk a parameter, its gradient and its state in one linear order (the
// CPU kernel without checking), and a checkpoint's buffers come back contiguous where a channels_last model's
// weights are not. Compares metadata only; copies once, when the layouts differ.
at::Tensor in_layout_of(const at::Tensor& p, const at::Tensor& t) {
  if (t.strides() == p.strides() && t.scalar_type() == p.scalar_type() && t.device() == p.device()) return t;
  return at::empty_like(p).copy_(t);
}

// The parameter's gradient as the kernels take it (in place: with a loss scale they write the unscaled gradient
// back, as Python's fused optimizers leave it).
at::Tensor kernel_gradient(const at::Tensor& p, const char* who) {
  PETSEG_CHECK(!p.grad().is_sparse(), who, ": sparse gradients are not supported");
  if (p.grad().strides() != p.strides()) p.mutable_grad() = in_layout_of(p, p.grad());
  return p.grad();
}

// What both fused optimizers share: libtorch's step() (the closure, then the update) and the loss scaler's entry,
// around an update that takes the scale and the inf/NaN verdict (undefined: none).
template <class Base>
class FusedStep : public Base, public AmpScalingStep {
 public:
  using Base::Base;

  at::Tensor step(typename Base::LossClosure closure = nullptr) override {
    at::Tensor loss;
    if (closure) {
      at::AutoGradMode enable_grad(true);
      loss = closure();
    }
    update(at::Tensor(), at::Tensor());
    return loss;
  }
  void step_scaled(const at::Tensor& grad_scale, const at::Tensor& found_inf) override {
    update(grad_scale, found_inf);
  }

 private:
  virtual void update(const at::Tensor& grad_scale, const at::Tensor& found_inf) = 0;
};

class FusedSGD : public FusedStep<torch::optim::SGD> {
 public:
  using FusedStep::FusedStep;

 private:
  void update(const at::Tensor& grad_scale, const at::Tensor& found_inf) override;
};

void FusedSGD::update(const at::Tensor& grad_scale, const at::Tensor& found_inf) {
  at::NoGradGuard no_grad;
  PerDevice scale(grad_scale), inf(found_inf);
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
    const bool momentum = o.momentum() != 0;
    // [0]: parameters with a momentum buffer; [1]: on their first step. The kernel's is_first_step (buffer =
    // gradient, as libtorch and Python) holds for a whole call, so the two go to separate calls.
    std::array<std::vector<at::Tensor>, 2> params, grads, buffers;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor grad = kernel_gradient(p, "fused SGD");
      size_t first = 0;
      if (momentum) {
        auto it = state_.find(p.unsafeGetTensorImpl());
        auto* s = it == state_.end() ? nullptr : static_cast<torch::optim::SGDParamState*>(it->second.get());
        if (!s || !s->momentum_buffer().defined()) {
          check_fusable(p, "fused SGD");
          auto fresh = std::make_unique<torch::optim::SGDParamState>();
          // Zeros rather than Python's empty_like: when the loss scaler skips this first step, the next one
          // (buffer * momentum + gradient) still starts the buffer at the gradient (exact with dampening 0, the
          // only dampening make_optimizer uses) instead of at uninitialised memory.
          fresh->momentum_buffer(at::zeros_like(p));
          s = fresh.get();
          state_[p.unsafeGetTensorImpl()] = std::move(fresh);
          first = 1;
        } else {
          s->momentum_buffer(in_layout_of(p, s->momentum_buffer()));
        }
        buffers[first].push_back(s->momentum_buffer());
      }
      params[first].push_back(p);
      grads[first].push_back(grad);
    }
    for (size_t first : {0, 1}) {
      for (const auto& idx : by_device_and_dtype(params[first])) {
        const at::Device device = params[first][idx[0]].device();
        at::_fused_sgd_(pick(params[first], idx), pick(grads[first], idx),
                        momentum ? pick(buffers[first], idx) : std::vector<at::Tensor>{}, o.weight_decay(),
                        o.momentum(), o.lr(), o.dampening(), o.nesterov(), /*maximize=*/false,
                        /*is_first_step=*/first == 1, scale.on(device), inf.on(device));
      }
    }
  }
}

// AdamParamState plus the step count as the fused kernel reads it: a float tensor on the parameter's device (as
// torch.optim's fused Adam keeps it). step() is the host's count, the one checkpoints save: it follows every step
// without a read-back, and FusedAdam::sync_state corrects it for the steps a loss scaler skipped on the device.
struct FusedAdamParamState : torch::optim::AdamParamState {
  at::Tensor device_step;  // [] float
};

class FusedAdam : public FusedStep<torch::optim::Adam> {
 public:
  using FusedStep::FusedStep;
  void sync_state();

 private:
  void update(const at::Tensor& grad_scale, const at::Tensor& found_inf) override;
  FusedAdamParamState& fused_state(const at::Tensor& p, bool amsgrad);
  bool host_steps_stale_ = false;  // a scaled step ran since the last sync_state
};

FusedAdamParamState& FusedAdam::fused_state(const at::Tensor& p, bool amsgrad) {
  const auto it = state_.find(p.unsafeGetTensorImpl());
  if (it != state_.end()) {
    if (auto* s = dynamic_cast<FusedAdamParamState*>(it->second.get())) return *s;
  }
  // A parameter's first step, or libtorch's AdamParamState (as a checkpoint loads it): the fused kind, the step
  // count copied to the device once.
  check_fusable(p, "fused Adam");
  auto s = std::make_unique<FusedAdamParamState>();
  if (it == state_.end()) {
    s->step(0);
    s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
    s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
  } else {
    const auto& old = static_cast<const torch::optim::AdamParamState&>(*it->second);
    s->step(old.step());
    s->exp_avg(in_layout_of(p, old.exp_avg()));
    s->exp_avg_sq(in_layout_of(p, old.exp_avg_sq()));
    if (old.max_exp_avg_sq().defined()) s->max_exp_avg_sq(in_layout_of(p, old.max_exp_avg_sq()));
  }
  if (amsgrad && !s->max_exp_avg_sq().defined()) s->max_exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
  s->device_step = at::scalar_tensor(double(s->step()), p.options().dtype(at::kFloat));
  FusedAdamParamState& ref = *s;
  state_[p.unsafeGetTensorImpl()] = std::move(s);
  return ref;
}

void FusedAdam::update(const at::Tensor& grad_scale, const at::Tensor& found_inf) {
  at::NoGradGuard no_grad;
  PerDevice scale(grad_scale), inf(found_inf);
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      grads.push_back(kernel_gradient(p, "fused Adam"));
      FusedAdamParamState& s = fused_state(p, o.amsgrad());
      s.step(s.step() + 1);
      params.push_back(p);
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
      if (o.amsgrad()) max_exp_avg_sqs.push_back(s.max_exp_avg_sq());
      steps.push_back(s.device_step);
    }
    for (const auto& idx : by_device_and_dtype(params)) {
      const at::Device device = params[idx[0]].device();
      const std::vector<at::Tensor> group_steps = pick(steps, idx);
      const std::optional<at::Tensor> found = inf.on(device);
      // As torch.optim's _fused_adam: the kernel reads the incremented count; a skipped step takes it back.
      at::_foreach_add_(group_steps, 1);
      at::_fused_adam_(pick(params, idx), pick(grads, idx), pick(exp_avgs, idx), pick(exp_avg_sqs, idx),
                       o.amsgrad() ? pick(max_exp_avg_sqs, idx) : std::vector<at::Tensor>{}, group_steps, o.lr(),
                       std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps(), o.amsgrad(),
                       /*maximize=*/false, scale.on(device), found);
      if (found) at::_foreach_add_(group_steps, found->view(at::IntArrayRef{}), /*alpha=*/-1);
    }
  }
  if (found_inf.defined()) host_steps_stale_ = true;
}

void FusedAdam::sync_state() {
  if (!host_steps_stale_) return;
  std::vector<FusedAdamParamState*> states;
  std::vector<at::Tensor> steps;
  for (auto& entry : state_) {
    if (auto* s = dynamic_cast<FusedAdamParamState*>(entry.second.get())) {
      states.push_back(s);
      steps.push_back(s->device_step);
    }
  }
  for (const auto& idx : by_device_and_dtype(steps)) {
    const at::Tensor host = at::stack(pick(steps, idx)).to(at::kCPU);  // the read-back, one per device
    const float* values = host.const_data_ptr<float>();
    for (size_t k = 0; k < idx.size(); ++k) states[idx[k]]->step(std::lround(values[k]));
  }
  host_steps_stale_ = false;
}

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const RunSpec& c, const std::vector<at::Tensor>& params,
                                                        bool fused) {
  check_choice("--optimizer", c.optimizer, kOptimizerChoices);
  if (c.optimizer == "adam") {
    const auto o = torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay);
    if (fused) return std::make_unique<FusedAdam>(params, o);
    return std::make_unique<torch::optim::Adam>(params, o);
  }
  const auto o = torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay);
  if (fused) return std::make_unique<FusedSGD>(params, o);
  return std::make_unique<torch::optim::SGD>(params, o);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const RunSpec& c, const std::vector<ParamGroup>& groups,
                                                        bool fused) {
  check_choice("--optimizer", c.optimizer, kOptimizerChoices);
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const ParamGroup& g : groups) {
    if (g.params.empty()) continue;
    std::unique_ptr<torch::optim::OptimizerOptions> options;
    if (c.optimizer == "adam") {
      options = std::make_unique<torch::optim::AdamOptions>(
          torch::optim::AdamOptions(c.lr * g.lr_mult).weight_decay(c.weight_decay));
    } else {
      options = std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(c.lr * g.lr_mult).momentum(c.momentum).weight_decay(c.weight_decay));
    }
    param_groups.emplace_back(g.params, std::move(options));
  }
  PETSEG_CHECK(!param_groups.empty(), "nothing to train: every parameter is frozen");
  if (c.optimizer == "adam") {
    const auto o = torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay);
    if (fused) return std::make_unique<FusedAdam>(std::move(param_groups), o);
    return std::make_unique<torch::optim::Adam>(std::move(param_groups), o);
  }
  const auto o = torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay);
  if (fused) return std::make_unique<FusedSGD>(std::move(param_groups), o);
  return std::make_unique<torch::optim::SGD>(std::move(param_groups), o);
}

void set_learning_rates(torch::optim::Optimizer& optimizer, const std::vector<ParamGroup>& groups, double lr) {
  size_t i = 0;
  for (const ParamGroup& g : groups) {
    if (g.params.empty()) continue;
    PETSEG_CHECK(i < optimizer.param_groups().size(), "set_learning_rates: the optimizer has fewer groups");
    optimizer.param_groups()[i++].options().set_lr(lr * g.lr_mult);
  }
  PETSEG_CHECK(i == optimizer.param_groups().size(), "set_learning_rates: the optimizer has more groups");
}

void sync_optimizer_state(torch::optim::Optimizer& optimizer) {
  if (auto* adam = dynamic_cast<FusedAdam*>(&optimizer)) adam->sync_state();
}

}  // namespace petseg::train
