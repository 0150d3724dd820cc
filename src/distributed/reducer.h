// The gradient reducer (DistributedDataParallel's side of a step, kept apart from the transport as Flashlight keeps
// reducers apart from backends): parameters broadcast once, gradients all-reduced in buckets over a Communicator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

#include "distributed/communicator.h"

namespace petseg::distributed {

// What DistributedDataParallel does for a module's tensors: broadcast from rank 0 at start, and gradients
// averaged across ranks in buckets of about `bucket_bytes` (one collective per bucket, never per parameter).
// Gradient hooks copy each gradient into its bucket as backward produces it and start the bucket's all-reduce as
// soon as the bucket is full, so communication overlaps the rest of backward; buckets are launched in the same
// order on every rank, as collectives must be.
class GradientSync {
 public:
  GradientSync(Communicator& comm, std::vector<at::Tensor> parameters, size_t bucket_bytes = size_t(25) << 20);
  // Rank 0's values everywhere; one collective per dtype.
  void broadcast_parameters(std::vector<at::Tensor> parameters_and_buffers);
  // After backward: waits for the buckets (starting any whose parameters got no gradient, as zeros) and sets every
  // parameter's grad to the mean over ranks.
  void average_gradients();
  size_t num_buckets() const { return buckets_.size(); }
  // Buckets whose all-reduce had started during the last backward (before average_gradients was called).
  size_t launched_during_backward() const { return launched_during_backward_; }

 private:
  void on_gradient(size_t param, const at::Tensor& grad);
  void launch_ready_buckets();  // caller holds mutex_

  Communicator& comm_;
  std::vector<at::Tensor> parameters_;
  std::vector<std::vector<size_t>> buckets_;   // indices into parameters_
  std::vector<size_t> bucket_of_, offset_of_;  // per parameter
  std::vector<at::Tensor> flat_;               // per bucket, reused every step
  std::vector<size_t> pending_;                // gradients still missing, per bucket
  std::vector<std::function<void()>> waits_;   // per launched bucket
  size_t next_launch_ = 0;
  size_t launched_during_backward_ = 0;
  std::mutex mutex_;
};

}  // namespace petseg::distributed
