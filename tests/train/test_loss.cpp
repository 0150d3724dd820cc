// train/loss and train/class_weights: every loss against PyTorch's CrossEntropyLoss and segmentation_models_pytorch's
// DiceLoss/FocalLoss (values and gradients), bf16 autocast, the ignore index; median-frequency weights by hand.
#include "train/loss.h"

#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/autocast.h"
#include "data/class_counts.h"
#include "data/masks.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/class_weights.h"

namespace petseg::train {
namespace {

const std::vector<LossKind> kAllKinds = {LossKind::kCrossEntropy, LossKind::kDice, LossKind::kFocal,
                                         LossKind::kCrossEntropyDice};

// One comparison with the reference: random logits and targets with ignored pixels.
struct Case {
  std::string name;
  at::Tensor logits, target, weight;  // weight may be undefined
  int64_t ignore_index = kIgnoreIndex;
};

// Targets in [0, classes) with about `ignored` of the pixels at 255.
at::Tensor random_target(at::IntArrayRef shape, int64_t classes, double ignored) {
  at::Tensor t = at::randint(0, classes, shape, at::kLong);
  return t.masked_fill_(at::rand(shape) < ignored, kIgnoreIndex);
}

std::vector<Case> reference_cases() {
  at::manual_seed(7);
  std::vector<Case> cases;
  // Several shapes, class weights, about a fifth of the pixels ignored.
  cases.push_back(
      {"shape_2x4x17x23", at::randn({2, 4, 17, 23}), random_target({2, 17, 23}, 4, 0.2), at::rand({4}) + 0.25});
  cases.push_back({"shape_3x21x9x11", 2 * at::randn({3, 21, 9, 11}), random_target({3, 9, 11}, 21, 0.3), {}});
  // Class 2 of 3 is absent from the batch (Dice counts it as 0; CE's weight for it never applies).
  cases.push_back({"absent_class", at::randn({1, 3, 8, 5}), random_target({1, 8, 5}, 2, 0.1),
                   at::tensor({0.5, 2.0, 3.0}, at::kFloat)});
  // Every pixel of class 1 is ignored: the configured ignore index names it (no 255 in the target, as
  // CrossEntropyLoss(ignore_index=1) needs).
  cases.push_back({"class_ignored", at::randn({2, 5, 6, 7}), at::randint(0, 5, {2, 6, 7}, at::kLong),
                   at::rand({5}) + 0.5, /*ignore_index=*/1});
  // Confident logits (saturated softmax and sigmoid), two classes.
  cases.push_back({"saturated_2x2x16x16", 12 * at::randn({2, 2, 16, 16}), random_target({2, 16, 16}, 2, 0.25), {}});
  return cases;
}

std::map<std::string, at::Tensor> python_reference(const std::vector<Case>& cases, const testing::TempDir& dir) {
  model::StateDict in;
  for (const Case& c : cases) {
    in.emplace_back(c.name + ".logits", c.logits);
    in.emplace_back(c.name + ".target", c.target);
    in.emplace_back(c.name + ".ignore_index", at::tensor(c.ignore_index, at::kLong));
    if (c.weight.defined()) in.emplace_back(c.name + ".weight", c.weight);
  }
  model::save_state_dict(in, dir / "cases.pth");
  testing::run_python_script("loss_reference.py", {(dir / "cases.pth").string(), (dir / "reference.pth").string()});
  std::map<std::string, at::Tensor> out;
  for (auto& [k, v] : model::read_state_dict(dir / "reference.pth")) out[k] = v;
  return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(Loss, MatchesCrossEntropyAndSmpInValueAndGradient) {
  PETSEG_REQUIRE_PYTHON_MODULE("segmentation_models_pytorch");
  testing::TempDir dir;
  const std::vector<Case> cases = reference_cases();
  const std::map<std::string, at::Tensor> ref = python_reference(cases, dir);
  for (const Case& c : cases) {
    for (LossKind kind : kAllKinds) {
      const std::string key = c.name + "." + loss_kind_name(kind);
      SCOPED_TRACE(key);
      ASSERT_TRUE(ref.count(key + ".value") && ref.count(key + ".grad"));
      const at::Tensor logits = c.logits.clone().requires_grad_(true);
      const at::Tensor value = compute_loss({kind, c.weight, c.ignore_index}, logits, c.target);
      value.backward();
      EXPECT_EQ(value.scalar_type(), at::kFloat);
      EXPECT_EQ(value.dim(), 0);
      // 1e-6 relative to the loss where it exceeds 1: float32 sums of another order (a mask instead of smp's boolean
      // index) differ in the last bits, and a ulp of a loss of 5 is 5e-7.
      const double want = ref.at(key + ".value").item<double>();
      EXPECT_NEAR(value.item<double>(), want, 1e-6 * std::max(1.0, std::abs(want)));
      const at::Tensor& grad = ref.at(key + ".grad");
      // 1e-6, and small beside the gradient's scale: a tolerance that tells a right gradient from a wrong one.
      const double scale = grad.abs().max().item<double>(), diff = max_abs_diff(logits.grad(), grad);
      EXPECT_LT(diff, 1e-6);
      EXPECT_LT(diff, 1e-4 * scale);
      // Ignored pixels get no gradient.
      at::Tensor ignored = (c.target == kIgnoreIndex).logical_or(c.target == c.ignore_index).unsqueeze(1);
      EXPECT_EQ(logits.grad().masked_select(ignored.expand_as(logits)).abs().sum().item<double>(), 0.0);
    }
  }
}

// A configured ignore class is ignored beside 255, not instead of it: the same as 255 everywhere.
TEST(Loss, ConfiguredIgnoreIndexKeeps255Ignored) {
  at::manual_seed(11);
  const at::Tensor logits = at::randn({2, 4, 5, 6});
  const at::Tensor target = random_target({2, 5, 6}, 4, 0.2);
  const at::Tensor folded = target.masked_fill(target == 3, kIgnoreIndex);
  for (LossKind kind : kAllKinds) {
    SCOPED_TRACE(loss_kind_name(kind));
    const double with_class = compute_loss({kind, {}, /*ignore_index=*/3}, logits, target).item<double>();
    const double with_255 = compute_loss({kind, {}, kIgnoreIndex}, logits, folded).item<double>();
    EXPECT_EQ(with_class, with_255);
    EXPECT_NE(with_class, compute_loss({kind, {}, kIgnoreIndex}, logits, target).item<double>());
  }
}

// Logits made under bf16 autocast (and bf16 logits as such) give a finite float32 loss close to float32's.
TEST(Loss, Bf16AutocastGivesAFloat32LossCloseToFloat32) {
  at::manual_seed(5);
  const at::Tensor features = at::randn({2, 8, 12, 12});
  const at::Tensor projection = at::randn({4, 8}) / 3;
  const at::Tensor target = random_target({2, 12, 12}, 4, 0.2);
  const at::Tensor weights = at::tensor({1.0, 0.5, 2.0, 1.5}, at::kFloat);
  // [K,C] x [N,C,H,W] -> [N,K,H,W] through matmul, which autocast runs in bf16.
  auto logits_of = [&](const at::Tensor& f) {
    return at::matmul(projection, f.permute({0, 2, 3, 1}).unsqueeze(-1)).squeeze(-1).permute({0, 3, 1, 2});
  };
  for (LossKind kind : kAllKinds) {
    SCOPED_TRACE(loss_kind_name(kind));
    const Loss loss{kind, weights, kIgnoreIndex};
    const double fp32 = compute_loss(loss, logits_of(features), target).item<double>();
    at::Tensor bf16_loss;
    {
      AutocastGuard autocast(at::kCPU, at::kBFloat16);
      const at::Tensor logits = logits_of(features);
      ASSERT_EQ(logits.scalar_type(), at::kBFloat16) << "autocast did not run the matmul in bf16";
      bf16_loss = compute_loss(loss, logits, target);
    }
    EXPECT_EQ(bf16_loss.scalar_type(), at::kFloat);
    EXPECT_TRUE(std::isfinite(bf16_loss.item<double>()));
    EXPECT_NEAR(bf16_loss.item<double>(), fp32, 0.02 * std::abs(fp32) + 1e-3);
    const at::Tensor cast = compute_loss(loss, logits_of(features).to(at::kBFloat16), target);
    EXPECT_EQ(cast.scalar_type(), at::kFloat);
    EXPECT_NEAR(cast.item<double>(), fp32, 0.02 * std::abs(fp32) + 1e-3);
  }
}

TEST(Loss, RejectsBadInputsNamingThem) {
  const at::Tensor logits = at::randn({1, 3, 4, 4});
  const at::Tensor target = at::zeros({1, 4, 4}, at::kLong);
  auto error = [&](const Loss& loss, const at::Tensor& x, const at::Tensor& t) {
    return testing::error_of([&] { compute_loss(loss, x, t); });
  };
  EXPECT_NE(error({LossKind::kDice, at::ones({2}), kIgnoreIndex}, logits, target)
                .find("--class-weights: 2 weights "
                      "for 3 classes"),
            std::string::npos);
  EXPECT_NE(error({}, logits, at::zeros({1, 4, 5}, at::kLong)).find("does not match logits"), std::string::npos);
  EXPECT_NE(error({}, logits, target.to(at::kInt)).find("int64"), std::string::npos);
  EXPECT_NE(error({LossKind::kFocal, {}, 300}, logits, target).find("--ignore-index"), std::string::npos);
  EXPECT_EQ(parse_loss_kind("ce+dice"), LossKind::kCrossEntropyDice);
  for (const std::string& name : kLossChoices) EXPECT_EQ(loss_kind_name(parse_loss_kind(name)), name);
  EXPECT_EQ(testing::error_of([] { parse_loss_kind("lovasz"); }),
            "unknown --loss \"lovasz\"; valid: ce, dice, focal, ce+dice");
}

// Two class-index masks of 2x2 with 4 classes, class 3 absent, one pixel ignored:
//   A = 0 0 / 0 1     B = 0 2 / 2 255
// class pixels 4, 1, 2, 0; labelled pixels of the images containing each: 4+3, 4, 3, 0; frequencies 4/7, 1/4, 2/3;
// median 4/7; weights 1, (4/7)/(1/4) = 16/7, (4/7)/(2/3) = 6/7, and 0 for the absent class.
TEST(ClassWeights, MedianFrequencyByHand) {
  data::ClassPixelCounts counts(4);
  const data::MaskLut lut = data::mask_lut(data::MaskEncoding::kClassIndex, 4, data::BorderMode::kClass);
  image::Image a(2, 2, 1), b(2, 2, 1);
  a.pixels = {0, 0, 0, 1};
  b.pixels = {0, 2, 2, 255};
  counts.add(a, lut);
  data::ClassPixelCounts other(4);
  other.add(b, lut);
  counts.add(other);
  EXPECT_EQ(counts.class_pixels, (std::vector<int64_t>{4, 1, 2, 0}));
  EXPECT_EQ(counts.image_pixels, (std::vector<int64_t>{7, 4, 3, 0}));
  const std::vector<double> w = median_frequency_weights(counts.class_pixels, counts.image_pixels);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_DOUBLE_EQ(w[0], 1.0);
  EXPECT_DOUBLE_EQ(w[1], 16.0 / 7.0);
  EXPECT_DOUBLE_EQ(w[2], 6.0 / 7.0);
  EXPECT_EQ(w[3], 0.0);
  // An even count of present classes: the median is the mean of the middle two (1/4 and 1/2 -> 3/8).
  const std::vector<double> even = median_frequency_weights({1, 1}, {4, 2});
  EXPECT_DOUBLE_EQ(even[0], 1.5);
  EXPECT_DOUBLE_EQ(even[1], 0.75);
  EXPECT_NE(testing::error_of([] { median_frequency_weights({5}, {4}); }).find("class 0 has 5 pixels"),
            std::string::npos);
  const at::Tensor t = class_weights_tensor(w, at::kCPU);
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(t[1].item<float>(), float(16.0 / 7.0));
}

TEST(ClassWeights, ParsesTheOption) {
  EXPECT_EQ(parse_class_weights("none", 3).kind, ClassWeightsOption::Kind::kNone);
  EXPECT_EQ(parse_class_weights("auto", 3).kind, ClassWeightsOption::Kind::kAuto);
  const ClassWeightsOption o = parse_class_weights("1,2.5,0", 3);
  EXPECT_EQ(o.kind, ClassWeightsOption::Kind::kExplicit);
  EXPECT_EQ(o.weights, (std::vector<double>{1, 2.5, 0}));
  EXPECT_EQ(parse_class_weights("1,2", /*num_classes=*/0).weights.size(), 2u) << "count checked later";
  EXPECT_EQ(testing::error_of([] { parse_class_weights("1,2", 3); }),
            "--class-weights \"1,2\" gives 2 weights; the data set has 3 classes");
  EXPECT_EQ(testing::error_of([] { parse_class_weights("1,-2,3", 3); }),
            "--class-weights \"1,-2,3\": weight 2 is negative (-2)");
  for (const char* bad : {"1,x,3", "1,,3", "1,2,", "1,2x,3", "nan,1,1", "1,inf,1", "", "Auto"}) {
    EXPECT_NE(testing::error_of([&] { parse_class_weights(bad, 3); }).find("is not a number"), std::string::npos)
        << bad;
  }
  EXPECT_NE(testing::error_of([] { parse_class_weights("0,0", 2); }).find("every weight is 0"), std::string::npos);
}

}  // namespace
}  // namespace petseg::train
