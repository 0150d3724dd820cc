// train/runner: DataParallel over two replicas (two CPU "devices" here; GPUs in real use) gives the primary the
// same gradients and loss as one device on the whole batch, also when the ignored pixels fall unevenly.
#include "train/runner.h"

#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>

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
  model::DeepLabV3 net = model::build_model(mc).model;
  net->eval();  // BatchNorm on running statistics and no dropout: chunks and whole batch are comparable exactly
  const at::Tensor x = at::randn({4, 3, 40, 40});
  at::Tensor y = at::randint(0, 3, {4, 40, 40}, at::kLong);
  y.narrow(0, 3, 1).fill_(255);                   // the last sample (second replica) is all ignored ...
  y.narrow(0, 0, 1).narrow(1, 0, 20).fill_(255);  // ... and half of the first one

  Runner single(net, /*script=*/false);
  const at::Tensor loss = segmentation_loss(single.forward(x), y, 0.5);
  loss.backward();
  std::vector<at::Tensor> expected;
  for (auto& p : net->parameters()) {
    expected.push_back(p.grad().clone());
    p.mutable_grad() = at::Tensor();
  }

  DataParallel dp(net, mc, {at::kCPU, at::kCPU}, /*torch_script=*/false, /*channels_last=*/false);
  ASSERT_EQ(dp.size(), 2u);
  const at::Tensor dp_loss = dp.forward_backward(x, y, 0.5, {});
  EXPECT_NEAR(dp_loss.item<double>(), loss.item<double>(), 1e-5);
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_TRUE(params[i].grad().defined()) << "parameter " << i;
    const double scale = std::max(1.0, expected[i].abs().max().item<double>());
    EXPECT_LT((params[i].grad() - expected[i]).abs().max().item<double>() / scale, 1e-4) << "parameter " << i;
  }
}

}  // namespace
}  // namespace petseg::train
