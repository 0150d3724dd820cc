// model/batchnorm: the SyncBatchNorm arithmetic against libtorch's own BatchNorm2d (a one-rank "all-reduce" must
// give exactly BatchNorm: output, running statistics and all three gradients), and that the sync path is
// skipped in eval mode.
#include "model/batchnorm.h"

#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/batchnorm.h>

namespace petseg::model {
namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(SyncBatchNorm, OneRankEqualsBatchNormForwardBackwardAndStatistics) {
  at::manual_seed(3);
  BatchNorm2d synced(5);
  torch::nn::BatchNorm2d plain(5);  // libtorch's own
  {
    torch::NoGradGuard no_grad;
    synced->weight.uniform_(0.5, 1.5);
    synced->bias.uniform_(-0.5, 0.5);
    plain->weight.copy_(synced->weight);
    plain->bias.copy_(synced->bias);
  }
  int calls = 0;
  EXPECT_EQ(convert_sync_batchnorm(*synced, [&calls](at::Tensor&) { ++calls; }), 1);
  const at::Tensor x = at::randn({3, 5, 4, 6}) * 2 + 1;
  const at::Tensor dy = at::randn({3, 5, 4, 6});
  const at::Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
  const at::Tensor ya = synced->forward(xa), yb = plain->forward(xb);
  EXPECT_EQ(calls, 1) << "one collective forward";
  EXPECT_LT(max_diff(ya, yb), 1e-5);
  (ya * dy).sum().backward();
  (yb * dy).sum().backward();
  EXPECT_EQ(calls, 2) << "one collective backward";
  EXPECT_LT(max_diff(xa.grad(), xb.grad()), 1e-5);
  EXPECT_LT(max_diff(synced->weight.grad(), plain->weight.grad()), 1e-4);
  EXPECT_LT(max_diff(synced->bias.grad(), plain->bias.grad()), 1e-4);
  EXPECT_LT(max_diff(synced->running_mean, plain->running_mean), 1e-6);
  EXPECT_LT(max_diff(synced->running_var, plain->running_var), 1e-6);
  EXPECT_EQ(synced->num_batches_tracked.item<int64_t>(), 1);

  synced->eval();
  synced->forward(x);
  EXPECT_EQ(calls, 2) << "eval mode uses the running statistics, no collective";
}

}  // namespace
}  // namespace petseg::model
