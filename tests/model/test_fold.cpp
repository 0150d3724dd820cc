// model/fold: every registered model computes the same function once its BatchNorm layers are folded (random
// statistics, a non-square input), the pairs are the ones the forward's dataflow has (ASPP's pooling branch,
// MobileNetV3's blocks and not its SE convolutions, LR-ASPP's cbr), the folded model casts to bf16 and traces, and it
// refuses to train.
#include "model/fold.h"

#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <iostream>
#include <map>

#include "core/check.h"
#include "core/device.h"
#include "model/torchscript.h"
#include "random_weights.h"
#include "test_util.h"

namespace petseg::model {
namespace {

using testing::error_of;

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a.to(at::kFloat) - b).abs().max().item<double>() / scale;
}

int count_batchnorms(torch::nn::Module& module) {
  int n = 0;
  for (auto& m : module.modules()) n += m->as<BatchNorm2dImpl>() != nullptr;
  return n;
}

std::map<std::string, std::string> pair_paths(SegmentationModelImpl& model) {
  std::map<std::string, std::string> paths;
  for (const ConvBatchNorm& p : conv_batchnorm_pairs(model)) paths[p.conv_path] = p.bn_path;
  return paths;
}

class FoldEveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(FoldEveryModel, ComputesTheSameFunction) {
  configure_threads(0);
  SegmentationModel model = testing::random_model(GetParam());
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::randn({2, 3, 67, 83});
  const SegmentationOutput before = model->forward(x);
  const int batchnorms = count_batchnorms(*model);
  EXPECT_EQ(fold_batchnorm(*model), batchnorms) << "every BatchNorm2d of these models follows a convolution";
  for (auto& m : model->modules()) {
    if (auto* bn = m->as<BatchNorm2dImpl>()) {
      EXPECT_TRUE(bn->folded());
    }
  }
  const SegmentationOutput after = model->forward(x);
  EXPECT_LT(rel_diff(after.out, before.out), 1e-4);
  if (before.aux.defined()) {
    EXPECT_LT(rel_diff(after.aux, before.aux), 1e-4);
  }
  std::cout << "[ fold ] " << GetParam() << ": " << batchnorms << " BatchNorm2d folded, out "
            << rel_diff(after.out, before.out) << " (relative max abs difference)\n";
  EXPECT_EQ(fold_batchnorm(*model), 0) << "nothing is left to fold";
}

INSTANTIATE_TEST_SUITE_P(Models, FoldEveryModel, ::testing::ValuesIn(kModelChoices),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(Fold, PairsFollowTheForwardsDataflow) {
  SegmentationModel deeplab = testing::random_model("deeplabv3_mobilenet_v3_large");
  const auto paths = pair_paths(*deeplab);
  EXPECT_EQ(paths.at("backbone.0.0"), "backbone.0.1");
  EXPECT_EQ(paths.at("backbone.4.block.0.0"), "backbone.4.block.0.1");
  EXPECT_EQ(paths.at("classifier.0.convs.4.1"), "classifier.0.convs.4.2") << "ASPP's pooling branch";
  EXPECT_EQ(paths.at("classifier.0.project.0"), "classifier.0.project.1");
  EXPECT_EQ(paths.at("classifier.1"), "classifier.2");
  EXPECT_EQ(paths.at("aux_classifier.0"), "aux_classifier.1");
  EXPECT_EQ(paths.count("backbone.4.block.2.fc1"), 0u) << "an SE convolution has no BatchNorm";
  EXPECT_EQ(paths.count("classifier.4"), 0u);
  SegmentationModel resnet = testing::random_model("fcn_resnet50");
  const auto resnet_paths = pair_paths(*resnet);
  EXPECT_EQ(resnet_paths.at("backbone.conv1"), "backbone.bn1");
  EXPECT_EQ(resnet_paths.at("backbone.layer1.0.conv3"), "backbone.layer1.0.bn3");
  EXPECT_EQ(resnet_paths.at("backbone.layer1.0.downsample.0"), "backbone.layer1.0.downsample.1");
  SegmentationModel lraspp = testing::random_model("lraspp_mobilenet_v3_large");
  EXPECT_EQ(pair_paths(*lraspp).at("classifier.cbr.0"), "classifier.cbr.1");
  EXPECT_EQ(pair_paths(*lraspp).count("classifier.scale.1"), 0u) << "LR-ASPP's scale branch has no BatchNorm";
}

TEST(Fold, FoldedModelCastsToBFloat16AndTraces) {
  configure_threads(0);
  SegmentationModel model = testing::random_model("lraspp_mobilenet_v3_large");
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::randn({1, 3, 64, 96});
  const at::Tensor reference = model->forward(x).out;
  fold_batchnorm(*model);
  torch::jit::Module traced = trace_model(*model, x);
  EXPECT_LT(rel_diff(run_scripted(traced, x).out, reference), 1e-4) << "TorchScript sees the folded weights";
  model->to(at::kBFloat16);
  const at::Tensor bf16 = model->forward(x.to(at::kBFloat16)).out;
  EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
  EXPECT_LT(rel_diff(bf16, reference), 5e-2) << "bf16 keeps about 3 significant digits";
}

TEST(Fold, NeedsEvalModeAndTheFoldedModelRefusesToTrain) {
  SegmentationModel model = testing::random_model("lraspp_mobilenet_v3_large");
  model->train();
  EXPECT_NE(error_of([&] { fold_batchnorm(*model); }).find("must be in eval mode"), std::string::npos);
  model->eval();
  EXPECT_GT(fold_batchnorm(*model), 0);
  model->train();
  EXPECT_NE(error_of([&] { model->forward(at::randn({2, 3, 64, 64})); }).find("for inference only"), std::string::npos);
}

}  // namespace
}  // namespace petseg::model
