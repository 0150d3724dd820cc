// model/fused_program: the fused forward computes the model's eval-mode `out` for every registered model, in both
// memory formats, at two shapes (weights packed again for the second) and in bf16 (DeepLabV3's atrous convolutions
// as sums over their taps); the fusions are the ones the architectures allow; the caller's images stay unwritten.
#include "model/fused_program.h"

#include <ATen/ops/conv2d.h>
#include <ATen/ops/randn.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/modules/conv.h>

#include <iostream>

#include "core/device.h"
#include "model/fold.h"
#include "model/segmentation.h"
#include "random_weights.h"

namespace petseg::model {
namespace {

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>() / scale;
}

// The eval-mode reference and the fused program of the same random model (BatchNorm folded, aux head skipped).
struct Pair {
  SegmentationModel reference, model;
};
Pair models(const std::string& name) {
  Pair p{testing::random_model(name, 5), testing::random_model(name, 5)};
  p.model->eval();
  p.model->skip_aux();
  torch::NoGradGuard no_grad;
  fold_batchnorm(*p.model);
  return p;
}

class FusedEveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(FusedEveryModel, ComputesTheModelsOutInEitherFormat) {
  configure_threads(0);
  at::manual_seed(21);
  Pair p = models(GetParam());
  const FusedProgram program(*p.model);
  EXPECT_GT(program.fused_activations(), 0);
  std::cout << "[ fused ] " << GetParam() << ": " << program.describe() << "\n";
  c10::InferenceMode guard;
  for (const at::Tensor& x : {at::randn({2, 3, 67, 83}), at::randn({1, 3, 96, 64})}) {
    const at::Tensor expected = p.reference->forward(x).out;
    const at::Tensor cl = x.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor before = x.clone();
    EXPECT_LT(rel_diff(program.run(x), expected), 1e-4) << "contiguous " << x.sizes();
    convert_to_channels_last(*p.model);
    EXPECT_LT(rel_diff(program.run(cl), expected), 1e-4) << "channels_last " << x.sizes();
    EXPECT_TRUE(x.equal(before) && cl.equal(before)) << "the caller's images are never written";
    for (auto& w : p.model->parameters()) w.set_data(w.contiguous());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FusedEveryModel, ::testing::ValuesIn(kModelChoices),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(FusedProgram, FusesWhatTheArchitecturesAllow) {
  Pair resnet = models("fcn_resnet50");
  const FusedProgram r(*resnet.model);
  // ResNet-50: 53 convolutions (stem 1, blocks 16 x 3 + 4 downsamples) + FCN head 2; every block's relu(conv3 + x)
  // is one convolution with a sum and a ReLU post-op; every other ReLU follows its convolution.
  EXPECT_EQ(r.convolutions(), 55);
  EXPECT_EQ(r.fused_sums(), 16);
  EXPECT_EQ(r.fused_activations(), 1 + 16 * 3 + 1);  // the stem, each block's three, the head's
  Pair mobile = models("lraspp_mobilenet_v3_large");
  const FusedProgram m(*mobile.model);
  // MobileNetV3-Large: 10 of its 15 inverted residual blocks add their input back (stride 1, same width); LR-ASPP's
  // head adds its two classifiers' outputs (one convolution takes the other's as its sum).
  EXPECT_EQ(m.fused_sums(), 10 + 1);
  int sums_with_activation = 0;
  for (const auto& n : m.nodes()) sums_with_activation += n.sum >= 0 && n.activation != FusedProgram::Op::kInput;
  EXPECT_EQ(sums_with_activation, 0) << "MobileNetV3's residual has no activation after it";
}

TEST(FusedProgram, Bf16ComputesClassesAsFp32) {
  if (!FusedProgram::onednn_runs(at::kBFloat16)) GTEST_SKIP() << "no oneDNN bf16 on this CPU: the ops run unfused";
  configure_threads(0);
  at::manual_seed(22);
  for (const std::string name : {"deeplabv3_resnet50", "lraspp_mobilenet_v3_large"}) {
    Pair p = models(name);
    const FusedProgram program(*p.model);
    c10::InferenceMode guard;
    const at::Tensor x = at::randn({2, 3, 72, 88});
    const at::Tensor expected = p.reference->forward(x).out;
    for (auto& w : p.model->parameters()) w.set_data(w.to(at::kBFloat16));
    for (const bool cl : {false, true}) {
      if (cl) convert_to_channels_last(*p.model);
      const at::Tensor in = cl ? x.to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast) : x.to(at::kBFloat16);
      const at::Tensor out = program.run(in);
      EXPECT_EQ(out.scalar_type(), at::kFloat);
      const double agree = out.argmax(1).eq(expected.argmax(1)).to(at::kFloat).mean().item<double>();
      EXPECT_GT(agree, 0.9) << name << (cl ? " channels_last" : " contiguous");
      std::cout << "[ fused ] " << name << " bf16" << (cl ? " channels_last" : " contiguous") << ": " << 100 * agree
                << " % of the pixels get fp32's class, relative max abs difference " << rel_diff(out, expected) << "\n";
    }
  }
}

// The convolution as a sum over its taps is the convolution: maps smaller and larger than the dilation (taps partly
// inside, only the centre), a non-square map, either memory format, a 3x3 and a 5x3 kernel, with and without a bias.
TEST(FusedProgram, ConvolutionByTapsIsTheConvolution) {
  at::manual_seed(24);
  struct Case {
    int64_t h, w, dh, dw, kh, kw;
  };
  for (const Case& k :
       {Case{25, 31, 12, 12, 3, 3}, Case{30, 20, 24, 24, 3, 3}, Case{9, 11, 12, 12, 3, 3}, Case{17, 13, 4, 6, 5, 3}}) {
    const at::Tensor x = at::randn({2, 16, k.h, k.w});
    const at::Tensor weight = at::randn({8, 16, k.kh, k.kw}) * 0.1, bias = at::randn({8});
    for (const bool with_bias : {true, false}) {
      const at::Tensor b = with_bias ? bias : at::Tensor();
      const at::Tensor expected =
          at::conv2d(x, weight, b, {1, 1}, {k.dh * (k.kh / 2), k.dw * (k.kw / 2)}, {k.dh, k.dw});
      const TapWeights taps = stack_taps(weight, k.dh, k.dw, k.h, k.w);
      const int64_t inside = (k.dh < k.h ? k.kh : 1) * (k.dw < k.w ? k.kw : 1);
      EXPECT_EQ(int64_t(taps.offsets.size()), inside) << "taps that only read padding are left out";
      for (const at::Tensor& in : {x, x.contiguous(at::MemoryFormat::ChannelsLast)}) {
        const at::Tensor out = conv_by_taps(in, taps, b);
        ASSERT_EQ(out.sizes(), expected.sizes());
        EXPECT_LT(rel_diff(out, expected), 1e-5) << k.h << "x" << k.w << " dilation " << k.dh << "," << k.dw;
      }
    }
  }
}

// DeepLabV3's ASPP rates (12, 24, 36) run in bf16 as sums over their taps; on a 25x25 map (400 px at output stride
// 16) rate 12 and 24 taps land partly inside the map and rate 36's off-centre taps only on padding.
TEST(FusedProgram, WideDilationsRunAsTapsInBf16) {
  if (!FusedProgram::onednn_runs(at::kBFloat16)) GTEST_SKIP() << "no oneDNN bf16 on this CPU: the ops run unfused";
  configure_threads(0);
  at::manual_seed(23);
  Pair p = models("deeplabv3_mobilenet_v3_large");
  int wide = 0;
  for (const auto& m : p.model->modules()) {
    if (auto* c = m->as<torch::nn::Conv2d>()) wide += FusedProgram::wide_dilation(*c);
  }
  EXPECT_EQ(wide, 3) << "the ASPP's three atrous convolutions, not the backbone's dilated ones";
  const FusedProgram program(*p.model);
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({1, 3, 400, 400});
  const at::Tensor expected = p.reference->forward(x).out;
  for (auto& w : p.model->parameters()) w.set_data(w.to(at::kBFloat16));
  convert_to_channels_last(*p.model);
  const at::Tensor out = program.run(x.to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast));
  const double agree = out.argmax(1).eq(expected.argmax(1)).to(at::kFloat).mean().item<double>();
  EXPECT_GT(agree, 0.95);
  EXPECT_LT(rel_diff(out, expected), 0.05);
  std::cout << "[ fused ] deeplabv3_mobilenet_v3_large bf16 at 400 px (ASPP as taps): " << 100 * agree
            << " % of the pixels get fp32's class, relative max abs difference " << rel_diff(out, expected) << "\n";
}

TEST(FusedProgram, UnfoldedBatchNormStillRuns) {
  configure_threads(0);
  SegmentationModel reference = testing::random_model("deeplabv3_mobilenet_v3_large", 6);
  SegmentationModel model = testing::random_model("deeplabv3_mobilenet_v3_large", 6);
  reference->eval();
  model->eval();
  model->skip_aux();
  const FusedProgram program(*model);  // BatchNorm not folded: no conv is followed by its activation directly
  EXPECT_EQ(program.fused_sums(), 0);
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({1, 3, 64, 80});
  EXPECT_LT(rel_diff(program.run(x), reference->forward(x).out), 1e-4);
}

}  // namespace
}  // namespace petseg::model
