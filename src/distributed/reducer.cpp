// GradientSync: buckets filled by gradient hooks as backward runs, each all-reduced as soon as it is full, then
// scaled by 1/world; and the one broadcast of rank 0's parameters at start.
#include "distributed/reducer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/zeros.h>

#include <map>

namespace petseg::distributed {

GradientSync::GradientSync(Communicator& comm, std::vector<at::Tensor> parameters, size_t bucket_bytes)
    : comm_(comm), parameters_(std::move(parameters)) {
  // Buckets in reverse registration order, as DDP does: the last layers' gradients are ready first.
  std::vector<size_t> current;
  size_t bytes = 0;
  for (size_t i = parameters_.size(); i-- > 0;) {
    const bool dtype_change = !current.empty() && parameters_[i].scalar_type() != parameters_[current[0]].scalar_type();
    if (dtype_change) {  // a flat bucket holds one dtype
      buckets_.push_back(std::move(current));
      current.clear();
      bytes = 0;
    }
    current.push_back(i);
    bytes += parameters_[i].numel() * parameters_[i].element_size();
    if (bytes >= bucket_bytes) {
      buckets_.push_back(std::move(current));
      current.clear();
      bytes = 0;
    }
  }
  if (!current.empty()) buckets_.push_back(std::move(current));
  if (comm_.world_size() == 1) return;
  bucket_of_.resize(parameters_.size());
  offset_of_.resize(parameters_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    int64_t n = 0;
    for (size_t i : buckets_[b]) {
      bucket_of_[i] = b;
      offset_of_[i] = size_t(n);
      n += parameters_[i].numel();
    }
    flat_.push_back(at::zeros({n}, parameters_[buckets_[b][0]].options().requires_grad(false)));
    pending_.push_back(buckets_[b].size());
  }
  waits_.resize(buckets_.size());
  for (size_t i = 0; i < parameters_.size(); ++i) {
    parameters_[i].register_hook([this, i](const at::Tensor& grad) { on_gradient(i, grad); });
  }
}

void GradientSync::on_gradient(size_t i, const at::Tensor& grad) {
  const size_t b = bucket_of_[i];
  at::NoGradGuard no_grad;
  flat_[b].narrow(0, int64_t(offset_of_[i]), grad.numel()).copy_(grad.reshape(-1));
  std::lock_guard<std::mutex> lock(mutex_);
  if (--pending_[b] == 0) launch_ready_buckets();
}

void GradientSync::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && pending_[next_launch_] == 0) {
    waits_[next_launch_] = comm_.allreduce_sum_async(flat_[next_launch_]);
    ++next_launch_;
  }
}

void GradientSync::broadcast_parameters(std::vector<at::Tensor> tensors) {
  if (comm_.world_size() == 1) return;
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  at::NoGradGuard no_grad;
  for (auto& [dtype, group] : by_dtype) {
    std::vector<at::Tensor> flat;
    for (auto& t : group) flat.push_back(t.detach().reshape(-1));
    at::Tensor packed = at::cat(flat);
    comm_.broadcast(packed, 0);
    int64_t offset = 0;
    for (auto& t : group) {
      t.detach().copy_(packed.narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

void GradientSync::average_gradients() {
  if (comm_.world_size() == 1) return;
  {
    // Parameters that got no gradient this step count as zeros, so every rank launches every bucket.
    std::lock_guard<std::mutex> lock(mutex_);
    launched_during_backward_ = next_launch_;
    for (size_t b = next_launch_; b < buckets_.size(); ++b) {
      for (size_t i : buckets_[b]) {
        if (!parameters_[i].grad().defined()) {
          flat_[b].narrow(0, int64_t(offset_of_[i]), parameters_[i].numel()).zero_();
        }
      }
      pending_[b] = 0;
    }
    launch_ready_buckets();
  }
  const double scale = 1.0 / comm_.world_size();
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    waits_[b]();
    flat_[b].mul_(scale);
    for (size_t i : buckets_[b]) {
      at::Tensor& p = parameters_[i];
      const at::Tensor avg = flat_[b].narrow(0, int64_t(offset_of_[i]), p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(avg);
      } else {
        p.mutable_grad() = avg.clone();
      }
    }
    pending_[b] = buckets_[b].size();  // ready for the next step
  }
  next_launch_ = 0;
}

}  // namespace petseg::distributed
