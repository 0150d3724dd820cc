// Runner, the loss, and DataParallel.
#include "train/runner.h"

#include <ATen/ops/cross_entropy_loss.h>
#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>

#include <exception>
#include <mutex>
#include <thread>

#include "core/autocast.h"
#include "core/check.h"
#include "core/labels.h"
#include "model/torchscript.h"

namespace petseg::train {

model::SegmentationOutput Runner::forward(const at::Tensor& x) {
  if (!script_) return model_->forward(x);
  std::optional<torch::jit::Module>& traced = model_->is_training() ? train_ : eval_;
  if (!traced) traced = model::trace_model(*model_, x);
  return model::run_scripted(*traced, x);
}

at::Tensor segmentation_loss(const model::SegmentationOutput& y, const at::Tensor& target, double aux_weight,
                             const at::Tensor& normalizer) {
  const auto reduction = normalizer.defined() ? at::Reduction::Sum : at::Reduction::Mean;
  at::Tensor loss = at::cross_entropy_loss(y.out.to(at::kFloat), target, {}, reduction, kIgnoreIndex);
  if (y.aux.defined()) {
    loss = loss + aux_weight * at::cross_entropy_loss(y.aux.to(at::kFloat), target, {}, reduction, kIgnoreIndex);
  }
  return normalizer.defined() ? loss / normalizer.to(loss.device()) : loss;
}

std::vector<at::Device> data_parallel_devices() {
  const int64_t n = torch::cuda::device_count();
  std::vector<at::Device> devices;
  if (n < 2) return devices;
  for (int64_t i = 0; i < n; ++i) devices.emplace_back(at::kCUDA, static_cast<c10::DeviceIndex>(i));
  return devices;
}

DataParallel::DataParallel(model::DeepLabV3 primary, const model::ModelConfig& config, std::vector<at::Device> devices,
                           bool torch_script, bool channels_last)
    : devices_(std::move(devices)) {
  PETSEG_CHECK(!devices_.empty(), "DataParallel needs at least one device");
  runners_.emplace_back(primary, torch_script);
  for (size_t i = 1; i < devices_.size(); ++i) {
    // The primary's values are copied in before every step.
    model::DeepLabV3 replica = model::build_architecture(config);
    replica->freeze_backbone(primary->backbone_frozen());
    replica->to(devices_[i]);
    if (channels_last) model::convert_to_channels_last(*replica);
    PETSEG_CHECK(replica->parameters().size() == primary->parameters().size(),
                 "DataParallel: a replica has a different structure from the model");
    runners_.emplace_back(replica, torch_script);
  }
}

void DataParallel::broadcast_to_replicas() {
  torch::NoGradGuard no_grad;
  auto& primary = runners_.front().model();
  const auto params = primary->parameters();
  const auto buffers = primary->buffers();
  for (size_t r = 1; r < runners_.size(); ++r) {
    auto& replica = runners_[r].model();
    replica->train(primary->is_training());
    auto rp = replica->parameters();
    auto rb = replica->buffers();
    for (size_t i = 0; i < params.size(); ++i) rp[i].copy_(params[i], /*non_blocking=*/true);
    for (size_t i = 0; i < buffers.size(); ++i) rb[i].copy_(buffers[i], /*non_blocking=*/true);
  }
}

at::Tensor DataParallel::forward_backward(const at::Tensor& images, const at::Tensor& target, double aux_weight,
                                          const StepPrecision& precision) {
  // Stays on the device: no host sync per step.
  const at::Tensor normalizer = (target != kIgnoreIndex).sum().clamp_min(1).to(at::kFloat);
  const auto xs = images.chunk(int64_t(runners_.size()), 0);
  const auto ys = target.chunk(int64_t(runners_.size()), 0);
  const size_t used = xs.size();  // a batch smaller than the device count uses fewer replicas, as Scatter does
  broadcast_to_replicas();
  for (size_t r = 1; r < used; ++r) {
    for (auto& p : runners_[r].model()->parameters()) p.mutable_grad() = at::Tensor();
  }
  std::vector<at::Tensor> losses(used);
  std::vector<std::exception_ptr> errors(used);
  auto run = [&](size_t r) {
    try {
      c10::DeviceGuard guard(devices_[r]);
      at::Tensor x = xs[r].to(devices_[r], /*non_blocking=*/true);
      if (precision.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor y = ys[r].to(devices_[r], /*non_blocking=*/true);
      at::Tensor loss;
      {
        AutocastGuard autocast(devices_[r].type(), precision.dtype, precision.amp);  // thread-local state
        loss = segmentation_loss(runners_[r].forward(x), y, aux_weight, normalizer);
      }
      if (precision.loss_scale.defined()) {
        (loss * precision.loss_scale.to(loss.device(), /*non_blocking=*/true)).backward();
      } else {
        loss.backward();
      }
      losses[r] = loss.detach();
    } catch (...) {
      errors[r] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (size_t r = 1; r < used; ++r) threads.emplace_back(run, r);
  run(0);
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  // ReduceAdd: the replicas' gradients summed into the primary's.
  torch::NoGradGuard no_grad;
  auto params = runners_.front().model()->parameters();
  at::Tensor total = losses[0];
  for (size_t r = 1; r < used; ++r) {
    auto rp = runners_[r].model()->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      if (!rp[i].grad().defined()) continue;
      const at::Tensor g = rp[i].grad().to(params[i].device());
      if (params[i].grad().defined()) {
        params[i].mutable_grad().add_(g);
      } else {
        params[i].mutable_grad() = g.clone();
      }
    }
    total = total + losses[r].to(total.device());
  }
  return total;
}

}  // namespace petseg::train
