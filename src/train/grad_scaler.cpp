// GradScaler on ATen's own AMP kernels (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_), which have
// CPU and CUDA implementations: the same arithmetic as Python's torch.amp.GradScaler.
#include "train/grad_scaler.h"

#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_amp_update_scale.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <algorithm>
#include <utility>
#include <vector>

#include "core/check.h"

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
}

at::Tensor GradScaler::scale(const at::Tensor& loss) const {
  return loss.mul(scale_.to(loss.device(), /*non_blocking=*/true).to(loss.scalar_type()));
}

void GradScaler::unscale(torch::optim::Optimizer& optimizer) {
  PETSEG_CHECK(!unscaled_, "loss scaler: unscale() was already called this step");
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
  const at::Tensor inv_scale = scale_.to(at::kDouble).reciprocal().to(at::kFloat);
  for (auto& [key, grads] : groups) {
    at::Tensor found = at::zeros({1}, found_inf_.options().device(key.first));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv_scale.to(key.first, /*non_blocking=*/true));
    found_inf_.add_(found.to(found_inf_.device(), /*non_blocking=*/true));
  }
  unscaled_ = true;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
  if (!unscaled_) unscale(optimizer);
  // The one read-back per step: whether to skip (Python's GradScaler does the same).
  const bool finite = found_inf_.item<float>() == 0.0f;
  if (finite) optimizer.step();
  return finite;
}

void GradScaler::update() {
  PETSEG_CHECK(unscaled_, "loss scaler: update() without a step");
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, options_.growth_factor, options_.backoff_factor,
                         options_.growth_interval);
  unscaled_ = false;
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
