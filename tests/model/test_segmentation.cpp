// Every registered model (kModelChoices) against torchvision's own, from the same random weights: the state_dict
// key sets, eval-mode and train-mode outputs (dropout seeded alike), BatchNorm statistics after a train step;
// transfer learning replaces exactly the registry's prefixes; a frozen backbone stays fixed.
#include <ATen/ops/abs.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "core/device.h"
#include "deeplab_reference.h"
#include "model/factory.h"
#include "test_util.h"

namespace petseg::model {
namespace {

// Relative to the reference's scale: random weights make logits of very different sizes per model.
double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a - b).abs().max().item<double>() / scale;
}

std::set<std::string> key_set(const StateDict& state) {
  std::set<std::string> keys;
  for (const auto& [k, v] : state) keys.insert(k);
  return keys;
}

ModelConfig config_for(const std::string& name, int64_t num_classes) {
  ModelConfig config;
  set_model_name(config, name);
  config.num_classes = num_classes;
  config.aux_loss = !find_model(name).aux_prefix.empty();
  return config;
}

class SegmentationParity : public ::testing::TestWithParam<std::string> {};

// Loaded with torchvision's weights, the model's outputs and statistics match torchvision's in both modes.
void expect_forward_parity(const std::string& name, SegmentationModel& model, const testing::SegmentationReference& ref,
                           int seed) {
  torch::NoGradGuard no_grad;
  model->eval();
  const SegmentationOutput y = model->forward(ref.input);
  ASSERT_EQ(y.out.sizes(), ref.out.sizes());
  ASSERT_EQ(y.aux.defined(), ref.aux.defined());
  EXPECT_LT(rel_diff(y.out, ref.out), 1e-4);
  if (ref.aux.defined()) {
    EXPECT_LT(rel_diff(y.aux, ref.aux), 1e-4);
  }
  std::cout << "[ parity ] " << name << " eval: out " << rel_diff(y.out, ref.out);
  if (ref.aux.defined()) std::cout << " aux " << rel_diff(y.aux, ref.aux);
  model->train();
  at::manual_seed(seed);
  const SegmentationOutput t = model->forward(ref.input);
  EXPECT_LT(rel_diff(t.out, ref.train_out), 1e-4);
  if (ref.train_aux.defined()) {
    EXPECT_LT(rel_diff(t.aux, ref.train_aux), 1e-4);
  }
  double worst_buffer = 0;
  for (const auto& b : model->named_buffers()) {
    const at::Tensor& expected = ref.buffers_after_train.at(b.key());
    const double d = rel_diff(b.value().to(at::kDouble), expected.to(at::kDouble));
    EXPECT_LT(d, 1e-5) << b.key();
    worst_buffer = std::max(worst_buffer, d);
  }
  std::cout << "; train: out " << rel_diff(t.out, ref.train_out);
  if (ref.train_aux.defined()) std::cout << " aux " << rel_diff(t.aux, ref.train_aux);
  std::cout << "; buffers after the step " << worst_buffer << " (relative max abs differences)\n";
}

TEST_P(SegmentationParity, MatchesTorchvisionInEvalAndTrainMode) {
  PETSEG_REQUIRE_PYTHON();
  configure_threads(0);
  testing::TempDir dir;
  constexpr int kSeed = 7;
  const testing::SegmentationReference ref = testing::segmentation_reference(dir, GetParam(), kSeed);
  ModelConfig config = config_for(GetParam(), 21);
  config.weights = ref.weights;
  BuiltSegmentationModel built = build_segmentation_model(config);
  EXPECT_TRUE(built.weights_report.skipped.empty());
  EXPECT_TRUE(built.weights_report.ignored.empty());
  EXPECT_EQ(key_set(module_state_dict(*built.model)), key_set(read_state_dict(ref.weights)));
  expect_forward_parity(GetParam(), built.model, ref, kSeed);

  // Transfer learning from the same file: exactly the registry's prefixes are replaced, the rest comes from it.
  const ModelInfo& info = find_model(GetParam());
  config.num_classes = 3;
  BuiltSegmentationModel three = build_segmentation_model(config);
  std::set<std::string> skipped, expected;
  for (const auto& s : three.weights_report.skipped) skipped.insert(s.substr(0, s.find(':')));
  for (const auto& prefix : info.replaced_prefixes) expected.insert({prefix + "weight", prefix + "bias"});
  EXPECT_EQ(skipped, expected);
  {
    torch::NoGradGuard no_grad;
    three.model->eval();
    EXPECT_EQ(three.model->forward(ref.input).out.sizes(), (std::vector<int64_t>{2, 3, 67, 83}));
  }
  if (!info.aux_prefix.empty()) {
    config.aux_loss = false;  // the file's aux head is ignored, and said so
    BuiltSegmentationModel no_aux = build_segmentation_model(config);
    EXPECT_FALSE(no_aux.model->has_aux());
    ASSERT_FALSE(no_aux.weights_report.ignored.empty());
    EXPECT_EQ(no_aux.weights_report.ignored.front().rfind(info.aux_prefix, 0), 0u);
  }
}

TEST_P(SegmentationParity, FrozenBackboneStaysInEvalModeAndGetsNoGradients) {
  configure_threads(0);
  ModelConfig config = config_for(GetParam(), 3);
  config.freeze_backbone = true;
  SegmentationModel model = build_segmentation_architecture(config);
  model->train();
  EXPECT_TRUE(model->backbone_frozen());
  const auto children = model->named_children();
  EXPECT_FALSE(children["backbone"]->is_training());
  EXPECT_TRUE(children["classifier"]->is_training());
  const SegmentationOutput y = model->forward(at::randn({2, 3, 48, 40}));
  EXPECT_EQ(y.out.sizes(), (std::vector<int64_t>{2, 3, 48, 40}));
  (y.aux.defined() ? y.out.mean() + y.aux.mean() : y.out.mean()).backward();
  for (const auto& p : model->named_parameters()) {
    const bool in_backbone = p.key().rfind("backbone.", 0) == 0;
    EXPECT_EQ(p.value().grad().defined(), !in_backbone) << p.key();
  }
  model->freeze_backbone(false);
  EXPECT_TRUE(children["backbone"]->is_training());
  EXPECT_TRUE(children["backbone"]->parameters().front().requires_grad());
}

INSTANTIATE_TEST_SUITE_P(Models, SegmentationParity, ::testing::ValuesIn(kModelChoices),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace petseg::model
