// model/inference_model: for every registered model the inference model computes the model's own eval-mode `out`
// (BatchNorm folded, activations in place, the aux head skipped), eagerly and through TorchScript, folded or not; in
// either memory format and in bf16 (close); the memory format is timed once per size class, not per shape.
#include "model/inference_model.h"

#include <ATen/ops/randn.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>

#include <iostream>
#include <mutex>

#include "core/check.h"
#include "core/device.h"
#include "core/log.h"
#include "model/lraspp.h"
#include "random_weights.h"
#include "test_util.h"

namespace petseg::model {
namespace {

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a.to(at::kFloat) - b).abs().max().item<double>() / scale;
}

// The model's own eval-mode `out` for x (random weights drawn from `seed`, as the inference model gets them).
at::Tensor reference_out(const std::string& name, const at::Tensor& x, uint64_t seed) {
  SegmentationModel m = testing::random_model(name, seed);
  torch::NoGradGuard no_grad;
  return m->forward(x).out;
}

InferenceModelOptions options(const std::string& memory_format, bool script = false, bool fold = true,
                              at::ScalarType dtype = at::kFloat) {
  InferenceModelOptions o;
  o.memory_format = memory_format;
  o.torch_script = script;
  o.fold_batchnorm = fold;
  o.dtype = dtype;
  return o;
}

class InferenceEveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(InferenceEveryModel, ComputesTheModelsOutEagerAndScriptedFoldedOrNot) {
  configure_threads(0);
  at::manual_seed(11);
  const at::Tensor x = at::randn({2, 3, 67, 83});
  const at::Tensor expected = reference_out(GetParam(), x, 7);
  for (const bool script : {false, true}) {
    SegmentationModel m = testing::random_model(GetParam(), 7);
    InferenceModel im(m, at::kCPU, options("contiguous", script));
    EXPECT_GT(im.folded_layers(), 0);
    EXPECT_TRUE(m->aux_skipped());
    const at::Tensor out = im.forward(x);
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_LT(rel_diff(out, expected), 1e-4) << (script ? "TorchScript" : "eager");
    EXPECT_EQ(im.program() != nullptr, !script) << "eager on the CPU runs the fused program";
    std::cout << "[ infer ] " << GetParam() << (script ? " TorchScript" : " eager") << ", " << im.folded_layers()
              << " BatchNorm folded: " << rel_diff(out, expected) << " (relative max abs difference)\n";
  }
  InferenceModel unfolded(testing::random_model(GetParam(), 7), at::kCPU, options("contiguous", false, false));
  EXPECT_EQ(unfolded.folded_layers(), 0);
  EXPECT_LT(rel_diff(unfolded.forward(x), expected), 1e-5);
  InferenceModelOptions plain = options("contiguous");
  plain.fuse = false;  // the plain eager forward, as on CUDA
  InferenceModel unfused(testing::random_model(GetParam(), 7), at::kCPU, plain);
  EXPECT_EQ(unfused.program(), nullptr);
  EXPECT_LT(rel_diff(unfused.forward(x), expected), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Models, InferenceEveryModel, ::testing::ValuesIn(kModelChoices),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(InferenceModel, ChannelsLastAndBf16ComputeTheSame) {
  configure_threads(0);
  at::manual_seed(12);
  const at::Tensor x = at::randn({1, 3, 75, 61});
  for (const std::string name : {"lraspp_mobilenet_v3_large", "deeplabv3_resnet50"}) {
    const at::Tensor expected = reference_out(name, x, 3);
    for (const bool script : {false, true}) {
      InferenceModel cl(testing::random_model(name, 3), at::kCPU, options("channels-last", script));
      EXPECT_LT(rel_diff(cl.forward(x), expected), 1e-4) << name << (script ? " TorchScript" : " eager");
      InferenceModel bf16(testing::random_model(name, 3), at::kCPU, options("contiguous", script, true, at::kBFloat16));
      const at::Tensor out = bf16.forward(x);
      EXPECT_EQ(out.scalar_type(), at::kFloat) << "logits come back in fp32";
      const double agree = out.argmax(1).eq(expected.argmax(1)).to(at::kFloat).mean().item<double>();
      EXPECT_GT(agree, 0.9) << name << (script ? " TorchScript" : " eager") << ": bf16 and fp32 classes";
      std::cout << "[ infer ] " << name << (script ? " TorchScript" : " eager") << " bf16: " << 100 * agree
                << " % of the pixels get fp32's class, relative max abs difference " << rel_diff(out, expected) << "\n";
    }
  }
}

TEST(InferenceModel, ActivationsRunInPlaceWhereTheirInputIsFresh) {
  SegmentationModel m = testing::random_model("lraspp_mobilenet_v3_large");
  InferenceModel im(m, at::kCPU, options("contiguous"));
  auto* lraspp = dynamic_cast<LRASPPImpl*>(m.get());
  ASSERT_NE(lraspp, nullptr);
  // classifier.cbr = [conv, BatchNorm, ReLU]: the ReLU's input is the (folded) convolution's own output.
  EXPECT_TRUE(lraspp->classifier->cbr[2]->as<torch::nn::ReLU>()->options.inplace());
}

TEST(InferenceModel, TimesTheMemoryFormatOncePerSizeClass) {
  configure_threads(0);
  InferenceModel im(testing::random_model("lraspp_mobilenet_v3_large"), at::kCPU, options("auto"));
  std::mutex mutex;
  int decisions = 0;
  set_log_level(LogLevel::kDebug);
  set_log_sink([&](LogLevel, const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex);
    decisions +=
        message.find("inference: ") != std::string::npos && message.find(" ms channels_last") != std::string::npos;
  });
  at::manual_seed(13);
  const at::Tensor a = at::randn({1, 3, 64, 64});
  const at::Tensor first = im.forward(a);  // timed both ways; returns the contiguous run's logits
  EXPECT_LT(rel_diff(im.forward(a), first), 1e-5) << "the chosen format computes the same";
  im.forward(at::randn({1, 3, 65, 63}));    // another shape of the same size class: no timing
  im.forward(at::randn({1, 3, 128, 128}));  // four times the pixels: another class
  im.forward(at::randn({2, 3, 64, 64}));    // another batch: another class
  set_log_sink(nullptr);
  set_log_level(LogLevel::kInfo);
  EXPECT_EQ(decisions, 3);
}

TEST(InferenceModel, RefusesWhatItCannotRun) {
  InferenceModelOptions half;
  half.dtype = at::kHalf;
  EXPECT_NE(testing::error_of([&] {
              InferenceModel(testing::random_model("lraspp_mobilenet_v3_large"), at::kCPU, half);
            }).find("fp32 or bf16"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { inference_dtype("fp8"); }).find("--precision \"fp8\"; valid: fp32, bf16"),
            std::string::npos);
  InferenceModel im(testing::random_model("lraspp_mobilenet_v3_large"), at::kCPU, options("contiguous"));
  EXPECT_NE(testing::error_of([&] { im.forward(at::randn({3, 64, 64})); }).find("[N,3,H,W]"), std::string::npos);
}

}  // namespace
}  // namespace petseg::model
