// GradScaler on ATen's own AMP kernels (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_), which have
// CPU and CUDA implementations: the same arithmetic as Python's torch.amp.GradScaler.
#include "train/grad_scaler.h"

#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_amp_update_scale.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <algorithm>
#include <utility>
#include <vector>

#include "core/check.h"
#include "train/optimizer.h"

namespace petseg::train {

GradScaler::GradScaler(at::Device device, GradScalerOptions options) : options_(options) {
  PETSEG_CHECK(options_.init_scale > 0 && options_.growth_factor > 1 && options_.backoff_factor > 0 &&
                   options_.backoff_factor < 1 && options_.growth_interval >= 1,
               "loss scaler: init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and growth_interval >= 1 "
               "are required");
  const auto on = at::TensorOptions().device(device);
  scale_ = at::full({1}, options_.init_scale, on.dtype(at::kFloat));
  growth_tracker_ = at::zeros({1}, on.dtype(at::kInt));
  found_inf_ = at::zeros({1}, on.dtype(at::kFloat));
  skipped_ = at::zeros({1}, on.dtype(at::kFloat));
}

at::Tensor GradScaler::scale(const at::Tensor& loss) const {
  return loss.mul(scale_.to(loss.device(), /*non_blocking=*/true).to(loss.scalar_type()));
}

void GradScaler::check_gradients(torch::optim::Optimizer& optimizer, const at::Tensor& inv_scale) {
  at::NoGradGuard no_grad;
  // The kernel takes one device and dtype per call, as Python groups them (in order of first appearance).
  std::vector<std::pair<std::pair<at::Device, at::ScalarType>, std::vector<at::Tensor>>> groups;
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor& g = p.grad();
      PETSEG_CHECK(g.scalar_type() != at::kHalf, "loss scaler: gradients must not be fp16 (the parameters are fp32)");
      const std::pair<at::Device, at::ScalarType> key{g.device(), g.scalar_type()};
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& e) { return e.first == key; });
      if (it == groups.end()) it = groups.insert(groups.end(), {key, {}});
      it->second.push_back(g);
    }
  }
  found_inf_.zero_();
  // One verdict per device, shared by its dtypes (the kernel only ever sets it to 1), as Python's _unscale_grads_.
  std::vector<std::pair<at::Device, at::Tensor>> found;
  for (auto& [key, grads] : groups) {
    const at::Device device = key.first;  // a named copy: clang does not let lambdas capture structured bindings
    auto it = std::find_if(found.begin(), found.end(), [&](const auto& e) { return e.first == device; });
    if (it == found.end()) {
      it = found.insert(found.end(), {key.first, key.first == found_inf_.device()
                                                     ? found_inf_
                                                     : at::zeros({1}, found_inf_.options().device(key.first))});
    }
    at::_amp_foreach_non_finite_check_and_unscale_(grads, it->second, inv_scale.to(key.first, /*non_blocking=*/true));
  }
  for (const auto& [device, f] : found) {
    if (device != found_inf_.device()) found_inf_.add_(f.to(found_inf_.device(), /*non_blocking=*/true));
  }
  // The fused kernels skip only on exactly 1 (Python's sum over devices could give 2 and not skip).
  if (found.size() > 1) found_inf_.clamp_max_(1);
  checked_ = true;
}

void GradScaler::unscale(torch::optim::Optimizer& optimizer) {
  PETSEG_CHECK(!unscaled_, "loss scaler: unscale() was already called this step");
  PETSEG_CHECK(!stepped_, "loss scaler: unscale() after step(); call update() first");
  check_gradients(optimizer, scale_.to(at::kDouble).reciprocal().to(at::kFloat));
  unscaled_ = true;
}

void GradScaler::step(torch::optim::Optimizer& optimizer) {
  PETSEG_CHECK(!stepped_, "loss scaler: step() was already called this step; call update() first");
  if (auto* fused = dynamic_cast<AmpScalingStep*>(&optimizer)) {
    // Only the check here (inverse scale 1, as Python's _check_inf_per_device); the kernels divide by the scale.
    if (!checked_) check_gradients(optimizer, at::ones({1}, scale_.options()));
    fused->step_scaled(unscaled_ ? at::Tensor() : scale_, found_inf_);
  } else {
    if (!unscaled_) unscale(optimizer);
    // A plain optimizer cannot skip on the device: the one read-back per step (Python's GradScaler does the same).
    if (found_inf_.item<float>() == 0.0f) optimizer.step();
  }
  skipped_.add_(found_inf_);
  stepped_ = true;
}

void GradScaler::update() {
  PETSEG_CHECK(stepped_, "loss scaler: update() without a step");
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, options_.growth_factor, options_.backoff_factor,
                         options_.growth_interval);
  checked_ = unscaled_ = stepped_ = false;
}

int64_t GradScaler::take_skipped_steps() {
  const auto n = int64_t(skipped_.item<float>());
  skipped_.zero_();
  return n;
}

double GradScaler::current_scale() const { return scale_.item<double>(); }
int64_t GradScaler::growth_tracker() const { return growth_tracker_.item<int64_t>(); }

void GradScaler::load(double scale, int64_t growth_tracker) {
  PETSEG_CHECK(scale > 0 && std::isfinite(scale) && growth_tracker >= 0 && growth_tracker < options_.growth_interval,
               "loss scaler: invalid saved state (scale ", scale, ", growth tracker ", growth_tracker, ")");
  scale_.fill_(scale);
  growth_tracker_.fill_(growth_tracker);
}

}  // namespace petseg::train
