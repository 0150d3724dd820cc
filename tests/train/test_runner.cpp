// train/runner: DataParallel over two replicas (two CPU "devices" here; GPUs in real use) gives the primary the
// same gradients and loss as one device on the whole batch, for cross-entropy and Dice, weighted or not, also when the
// ignored pixels and the classes fall unevenly; its
// coalesced broadcast and gradient sum move every parameter, buffer and gradient where it belongs.
#include "train/runner.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/device.h"
#include "model/factory.h"

namespace petseg::train {
namespace {

TEST(DataParallel, TwoReplicasGiveTheGradientOfTheWholeBatch) {
  configure_threads(2);
  model::ModelConfig mc;
  mc.backbone = "resnet50";
  mc.num_classes = 3;
  mc.aux_loss = true;
  at::manual_seed(11);
  model::SegmentationModel net = model::build_segmentation_model(mc).model;
  net->eval();  // BatchNorm on running statistics and no dropout: chunks and whole batch are comparable exactly
  const at::Tensor x = at::randn({4, 3, 40, 40});
  at::Tensor y = at::randint(0, 3, {4, 40, 40}, at::kLong);
  y.narrow(0, 3, 1).fill_(255);                   // the last sample (second replica) is all ignored ...
  y.narrow(0, 0, 1).narrow(1, 0, 20).fill_(255);  // ... and half of the first one
  y.narrow(0, 2, 1).masked_fill_(y.narrow(0, 2, 1) == 2, 0);  // class 2 only in the first replica's chunk

  // Weighted cross-entropy divides by the batch's sum of weights and Dice sums over the batch: neither is a sum of
  // per-chunk losses.
  const at::Tensor weights = at::tensor({0.5, 1.0, 3.0}, at::kFloat);
  const std::vector<std::pair<std::string, Loss>> losses = {
      {"ce", Loss{LossKind::kCrossEntropy, {}, kIgnoreIndex}},
      {"weighted ce", Loss{LossKind::kCrossEntropy, weights, kIgnoreIndex}},
      {"dice", Loss{LossKind::kDice, {}, kIgnoreIndex}},
      {"weighted ce+dice", Loss{LossKind::kCrossEntropyDice, weights, kIgnoreIndex}}};
  Runner single(net, /*script=*/false);
  DataParallel dp(net, mc, {at::kCPU, at::kCPU}, /*torch_script=*/false, /*channels_last=*/false);
  ASSERT_EQ(dp.size(), 2u);
  for (const auto& [name, loss] : losses) {
    const at::Tensor value = segmentation_loss(loss, single.forward(x), y, 0.5);
    value.backward();
    std::vector<at::Tensor> expected;
    for (auto& p : net->parameters()) {
      expected.push_back(p.grad().clone());
      p.mutable_grad() = at::Tensor();
    }
    const at::Tensor dp_loss = dp.forward_backward(x, y, loss, 0.5, {});
    EXPECT_NEAR(dp_loss.item<double>(), value.item<double>(), 1e-5) << name;
    const auto params = net->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_TRUE(params[i].grad().defined()) << name << ": parameter " << i;
      const double scale = std::max(1.0, expected[i].abs().max().item<double>());
      EXPECT_LT((params[i].grad() - expected[i]).abs().max().item<double>() / scale, 1e-4)
          << name << ": parameter " << i;
      params[i].mutable_grad() = at::Tensor();
    }
  }
}

std::vector<at::Tensor> parameters_and_buffers(model::SegmentationModel& m) {
  std::vector<at::Tensor> all = m->parameters();
  for (const at::Tensor& b : m->buffers()) all.push_back(b);
  return all;
}

// The coalesced broadcast: after a step every replica holds exactly the primary's parameters AND buffers
// (BatchNorm running statistics, and the int64 num_batches_tracked: a second dtype), here with a channels_last
// replica of a contiguous primary, so the flat buffer's views must carry each tensor's own strides.
TEST(DataParallel, ReplicasReceiveThePrimarysParametersAndBuffers) {
  configure_threads(2);
  model::ModelConfig mc;
  mc.backbone = "resnet50";
  mc.num_classes = 3;
  mc.aux_loss = true;
  at::manual_seed(5);
  model::SegmentationModel net = model::build_segmentation_model(mc).model;
  {
    torch::NoGradGuard no_grad;  // values a freshly built replica cannot have by chance
    for (auto& p : net->parameters()) p.add_(at::randn_like(p), /*alpha=*/0.01);
    for (auto& b : net->buffers()) {
      if (at::isFloatingType(b.scalar_type())) {
        b.uniform_(0.5, 1.5);
      } else {
        b.fill_(7);
      }
    }
  }
  net->eval();  // running statistics are used, not updated: the step leaves them as broadcast
  DataParallel dp(net, mc, {at::kCPU, at::kCPU}, /*torch_script=*/false, /*channels_last=*/true);
  const std::vector<at::Tensor> want = parameters_and_buffers(net);
  const std::vector<at::Tensor> got = parameters_and_buffers(dp.replica(1).model());
  ASSERT_EQ(got.size(), want.size());
  size_t differ = 0, channels_last = 0, integral = 0;
  for (size_t i = 0; i < want.size(); ++i) differ += !at::equal(got[i], want[i]);
  ASSERT_GT(differ, want.size() / 2) << "the replica already equals the primary: the test would prove nothing";

  dp.forward_backward(at::randn({2, 3, 24, 24}), at::randint(0, 3, {2, 24, 24}, at::kLong), Loss{}, 0.5, {});
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(at::equal(got[i], want[i])) << "parameter or buffer " << i;
    const bool strided = !got[i].is_contiguous() && got[i].is_contiguous(at::MemoryFormat::ChannelsLast);
    channels_last += got[i].dim() == 4 && strided;
    integral += !at::isFloatingType(got[i].scalar_type());
  }
  EXPECT_GT(channels_last, 0u) << "no channels_last replica tensor: the strided views were not exercised";
  EXPECT_GT(integral, 0u) << "no integer buffer: the second dtype group was not exercised";
}

// The coalesced gradient sum when a parameter has no gradient on one side: a replica without it adds nothing (its
// chunk's share is missing from the sum), a primary without it receives the replica's alone. Every other
// gradient still lands where it belongs, so the flat buffer's offsets skip the missing ones consistently.
TEST(DataParallel, GradientsSumWhenASideHasNoGradient) {
  configure_threads(2);
  model::ModelConfig mc;
  mc.backbone = "resnet50";
  mc.num_classes = 3;
  mc.aux_loss = true;
  at::manual_seed(13);
  model::SegmentationModel net = model::build_segmentation_model(mc).model;
  net->eval();
  const at::Tensor x = at::randn({4, 3, 40, 40});
  at::Tensor y = at::randint(0, 3, {4, 40, 40}, at::kLong);
  y.narrow(0, 1, 1).narrow(1, 0, 20).fill_(255);
  auto take_grads = [&] {
    std::vector<at::Tensor> g;
    for (auto& p : net->parameters()) {
      g.push_back(p.grad().clone());
      p.mutable_grad() = at::Tensor();
    }
    return g;
  };
  Runner single(net, /*script=*/false);
  segmentation_loss(Loss{}, single.forward(x), y, 0.5).backward();
  const std::vector<at::Tensor> whole = take_grads();
  // The first chunk's share (the primary's): the whole batch's loss with the second chunk's outputs held constant.
  const model::SegmentationOutput a = single.forward(x.narrow(0, 0, 2)), b = single.forward(x.narrow(0, 2, 2));
  model::SegmentationOutput first_only;
  first_only.out = at::cat({a.out, b.out.detach()});
  first_only.aux = at::cat({a.aux, b.aux.detach()});
  segmentation_loss(Loss{}, first_only, y, 0.5).backward();
  const std::vector<at::Tensor> first = take_grads();

  // A channels_last replica: its gradients' strides differ from the primary's, as the views of the sum must handle.
  DataParallel dp(net, mc, {at::kCPU, at::kCPU}, /*torch_script=*/false, /*channels_last=*/true);
  auto position = [&](const std::string& name) {
    const std::vector<std::string> names = net->named_parameters().keys();
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) throw std::runtime_error("no parameter " + name);
    return static_cast<size_t>(it - names.begin());
  };
  // The replica lacks an early 3x3 conv's gradient and the 1x1 classifier's; the primary lacks a 3x3 aux conv's.
  const size_t not_on_replica_a = position("backbone.layer2.0.conv2.weight");
  const size_t not_on_replica_b = position("classifier.4.weight");
  const size_t not_on_primary = position("aux_classifier.0.weight");
  auto params = net->parameters();
  auto replica_params = dp.replica(1).model()->parameters();
  replica_params[not_on_replica_a].requires_grad_(false);
  replica_params[not_on_replica_b].requires_grad_(false);
  params[not_on_primary].requires_grad_(false);
  dp.forward_backward(x, y, Loss{}, 0.5, {});
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor expected = whole[i];
    if (i == not_on_replica_a || i == not_on_replica_b) expected = first[i];
    if (i == not_on_primary) expected = whole[i] - first[i];
    ASSERT_TRUE(params[i].grad().defined()) << "parameter " << i;
    ASSERT_EQ(params[i].grad().sizes(), expected.sizes()) << "parameter " << i;
    const double scale = std::max(1.0, expected.abs().max().item<double>());
    EXPECT_LT((params[i].grad() - expected).abs().max().item<double>() / scale, 1e-4) << "parameter " << i;
    if (i == not_on_replica_a || i == not_on_replica_b || i == not_on_primary) {
      // The second chunk's share is well above the tolerance, or the cases above could not be told apart.
      const double share = (whole[i] - first[i]).abs().max().item<double>();
      EXPECT_GT(share / std::max(1.0, whole[i].abs().max().item<double>()), 1e-3) << "parameter " << i;
    }
  }
}

}  // namespace
}  // namespace petseg::train
