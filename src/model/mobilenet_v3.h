// MobileNetV3-Large's features as torchvision's segmentation builders use them (mobilenet_v3_large(dilated=True)
// .features, whole): children 0..16 under torchvision's names (backbone.4.block.2.fc1), BatchNorm eps 0.001 /
// momentum 0.01, Hardswish / Hardsigmoid. The backbone mobilenet_v3_large of model/registry.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "model/backbone.h"
#include "model/batchnorm.h"

namespace petseg::model {

// torchvision's _make_divisible: the nearest multiple of `divisor`, never more than 10% below v.
int64_t make_divisible(double v, int64_t divisor = 8);

enum class Activation { kNone, kReLU, kHardswish };

struct ConvNormActivationOptions {
  int64_t in_channels = 0, out_channels = 0, kernel_size = 3, stride = 1, dilation = 1, groups = 1;
  Activation activation = Activation::kReLU;
};

// torchvision's Conv2dNormActivation with MobileNetV3's BatchNorm: .0 conv (no bias, padding (k-1)/2*dilation),
// .1 BN, then the activation (parameterless, so it has no name of its own here).
class ConvNormActivationImpl : public torch::nn::Module, public GraphEmitter {
 public:
  explicit ConvNormActivationImpl(const ConvNormActivationOptions& options);
  // [N,in,H,W] -> [N,out,H/stride,W/stride]
  at::Tensor forward(const at::Tensor& x);
  std::string emit(GraphOps& ops, const std::string& x) override;

  torch::nn::Conv2d conv{nullptr};
  BatchNorm2d bn{nullptr};

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& x);
  Activation activation_;
};
TORCH_MODULE(ConvNormActivation);

// torchvision's SqueezeExcitation as MobileNetV3 uses it: x * hardsigmoid(fc2(relu(fc1(avgpool(x))))).
class SqueezeExcitationImpl : public torch::nn::Module, public GraphEmitter {
 public:
  SqueezeExcitationImpl(int64_t input_channels, int64_t squeeze_channels);
  // [N,C,H,W] -> [N,C,H,W]
  at::Tensor forward(const at::Tensor& x);
  std::string emit(GraphOps& ops, const std::string& x) override;

  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& x);
};
TORCH_MODULE(SqueezeExcitation);

// One row of the MobileNetV3 paper's Table 1 (torchvision's InvertedResidualConfig at width 1.0).
struct InvertedResidualConfig {
  int64_t input_channels, kernel, expanded_channels, out_channels;
  bool use_se, use_hardswish;
  int64_t stride, dilation;
};

// block: [expand 1x1 if expanded != input] [depthwise kxk] [SE] [project 1x1, no activation]; a residual when
// stride 1 and input == output. A dilated block keeps stride 1 in its depthwise convolution.
class InvertedResidualImpl : public torch::nn::Module, public GraphEmitter {
 public:
  explicit InvertedResidualImpl(const InvertedResidualConfig& config);
  // [N,in,H,W] -> [N,out,H/stride,W/stride]
  at::Tensor forward(const at::Tensor& x);
  std::string emit(GraphOps& ops, const std::string& x) override;

  torch::nn::Sequential block{nullptr};

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& x);
  bool use_res_connect_;
};
TORCH_MODULE(InvertedResidual);

struct MobileNetV3Options {
  bool dilated = true;  // torchvision's dilated=True: the last stage (C4) at dilation 2, output stride 16
};

class MobileNetV3Impl : public BackboneImpl {
 public:
  explicit MobileNetV3Impl(const MobileNetV3Options& options = {});
  // [N,3,H,W] -> aux = features.4 [N,40,H/8,W/8], out = features.16 [N,960,H/16,W/16] (dilated)
  BackboneFeatures forward(const at::Tensor& x) override;
  BackboneNames emit(GraphOps& ops, const std::string& x) override;

  static constexpr int64_t kAuxChannels = 40, kOutChannels = 960;

 private:
  template <class Ops>
  typename Ops::Features run(Ops& ops, const typename Ops::Value& x);
  ConvNormActivation first_{nullptr}, last_{nullptr};  // features.0, features.16
  std::vector<InvertedResidual> blocks_;               // features.1 .. features.15
  int64_t aux_index_ = 0;                              // in features' numbering
};
TORCH_MODULE(MobileNetV3);

}  // namespace petseg::model
