// Shared by the distributed tests and their worker processes: a tiny model with BatchNorm, one SGD step, and the
// per-rank batches.
#pragma once

#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/sgd.h>

#include "distributed/communicator.h"
#include "distributed/reducer.h"
#include "model/batchnorm.h"

namespace petseg::distributed::fixtures {

inline torch::nn::Sequential small_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)),
                               torch::nn::BatchNorm2d(8), torch::nn::ReLU(),
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 3, 1)));
}

// One SGD step; BatchNorm frozen (eval mode) so the union of batches is exactly equivalent.
inline std::vector<at::Tensor> one_step(torch::nn::Sequential& net, const at::Tensor& x, const at::Tensor& y,
                                        GradientSync* sync) {
  net->train();
  net[1]->as<torch::nn::BatchNorm2d>()->eval();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  at::cross_entropy_loss(net->forward(x), y).backward();
  if (sync) sync->average_gradients();
  opt.step();
  return net->parameters();
}

// The same net with petseg's BatchNorm (which --sync-bn synchronises), trained in train mode: with SyncBatchNorm
// two ranks must match one process on the union of their batches, statistics included.
inline torch::nn::Sequential syncable_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)), model::BatchNorm2d(8),
                               torch::nn::ReLU(), torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 3, 1)));
}

// One SGD step with BatchNorm training; returns the parameters followed by the buffers.
inline std::vector<at::Tensor> one_train_bn_step(torch::nn::Sequential& net, const at::Tensor& x, const at::Tensor& y,
                                                 GradientSync* sync) {
  net->train();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  at::cross_entropy_loss(net->forward(x), y).backward();
  if (sync) sync->average_gradients();
  opt.step();
  std::vector<at::Tensor> out = net->parameters();
  for (auto& b : net->buffers()) out.push_back(b.to(at::kDouble));
  return out;
}

inline at::Tensor batch_x(int rank) {
  at::manual_seed(100 + rank);
  return at::randn({2, 3, 8, 8});
}
inline at::Tensor batch_y(int rank) {
  at::manual_seed(200 + rank);
  return at::randint(0, 3, {2, 8, 8}, at::kLong);
}

}  // namespace petseg::distributed::fixtures
