// BatchNorm2d under torchvision's names (weight, bias, running_mean, running_var, num_batches_tracked) that can
// synchronise its batch statistics across processes, as torch.nn.SyncBatchNorm does: in training the per-channel
// sums are all-reduced (one collective forward, one backward), so every rank normalises with the statistics of
// the global batch. Without a sync function it computes exactly what libtorch's BatchNorm2d does (at::batch_norm,
// so it traces, freezes and folds into convolutions as one). Its own class rather than a subclass of libtorch's:
// that one's template members are not exported from libtorch, so a subclass cannot link.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <functional>

namespace petseg::model {

// Sums a tensor in place over all ranks (the caller's communicator).
using AllreduceSum = std::function<void(at::Tensor&)>;

class BatchNorm2dImpl : public torch::nn::Cloneable<BatchNorm2dImpl> {
 public:
  // torch.nn.BatchNorm2d's defaults: eps 1e-5, momentum 0.1, affine, tracking running statistics.
  explicit BatchNorm2dImpl(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // [N,C,H,W] -> [N,C,H,W]
  torch::Tensor forward(const torch::Tensor& x);
  void set_sync(AllreduceSum allreduce) { sync_ = std::move(allreduce); }
  bool synced() const { return static_cast<bool>(sync_); }
  double eps() const { return eps_; }
  // Once model/fold.h has moved this layer's eval-mode transform into the convolution before it, the layer is the
  // identity. Its tensors stay registered, unused (libtorch cannot unregister a buffer); the folded model is for
  // inference: a forward in training mode is an error.
  void mark_folded();
  bool folded() const { return folded_; }

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  int64_t num_features_;
  double eps_, momentum_;
  AllreduceSum sync_;
  bool folded_ = false;
};
TORCH_MODULE(BatchNorm2d);

// torch.nn.SyncBatchNorm.convert_sync_batchnorm: every BatchNorm2d of `module` gets `allreduce` (empty: plain
// BatchNorm again). Returns how many layers were converted.
int convert_sync_batchnorm(torch::nn::Module& module, const AllreduceSum& allreduce);

}  // namespace petseg::model
