// MobileNetV3-Large's blocks and features, as torchvision's mobilenetv3.py and ops/misc.py build them, and the
// registry's mobilenet_v3_large backbone.
#include "model/mobilenet_v3.h"

#include <torch/nn/init.h>

#include <algorithm>

#include "model/eager_ops.h"
#include "model/registry.h"

namespace petseg::model {
namespace {

namespace nn = torch::nn;

// MobileNetV3's norm_layer: partial(nn.BatchNorm2d, eps=0.001, momentum=0.01).
constexpr double kBatchNormEps = 0.001, kBatchNormMomentum = 0.01;

// Table 1 of the paper as torchvision's _mobilenet_v3_conf("mobilenet_v3_large") lists it; `dilation` applies to
// the last stage (C4).
std::vector<InvertedResidualConfig> large_config(int64_t dilation) {
  // clang-format off
  //  in  k  expanded out  SE     hardswish stride dilation
  return {
      {16,  3, 16,  16,  false, false, 1, 1},
      {16,  3, 64,  24,  false, false, 2, 1},  // C1
      {24,  3, 72,  24,  false, false, 1, 1},
      {24,  5, 72,  40,  true,  false, 2, 1},  // C2
      {40,  5, 120, 40,  true,  false, 1, 1},
      {40,  5, 120, 40,  true,  false, 1, 1},
      {40,  3, 240, 80,  false, true,  2, 1},  // C3
      {80,  3, 200, 80,  false, true,  1, 1},
      {80,  3, 184, 80,  false, true,  1, 1},
      {80,  3, 184, 80,  false, true,  1, 1},
      {80,  3, 480, 112, true,  true,  1, 1},
      {112, 3, 672, 112, true,  true,  1, 1},
      {112, 5, 672, 160, true,  true,  2, dilation},  // C4
      {160, 5, 960, 160, true,  true,  1, dilation},
      {160, 5, 960, 160, true,  true,  1, dilation},
  };
  // clang-format on
}

ConvNormActivation cna(int64_t in, int64_t out, int64_t kernel, Activation activation, int64_t stride = 1,
                       int64_t dilation = 1, int64_t groups = 1) {
  ConvNormActivationOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_size = kernel;
  o.stride = stride;
  o.dilation = dilation;
  o.groups = groups;
  o.activation = activation;
  return ConvNormActivation(o);
}

}  // namespace

int64_t make_divisible(double v, int64_t divisor) {
  int64_t new_v = std::max(divisor, int64_t(v + double(divisor) / 2) / divisor * divisor);
  if (double(new_v) < 0.9 * v) new_v += divisor;
  return new_v;
}

ConvNormActivationImpl::ConvNormActivationImpl(const ConvNormActivationOptions& o) : activation_(o.activation) {
  const int64_t padding = (o.kernel_size - 1) / 2 * o.dilation;
  conv = register_module("0", nn::Conv2d(nn::Conv2dOptions(o.in_channels, o.out_channels, o.kernel_size)
                                             .stride(o.stride)
                                             .padding(padding)
                                             .dilation(o.dilation)
                                             .groups(o.groups)
                                             .bias(false)));
  bn = register_module("1", BatchNorm2d(o.out_channels, kBatchNormEps, kBatchNormMomentum));
}

template <class Ops>
typename Ops::Value ConvNormActivationImpl::run(Ops& ops, const typename Ops::Value& x) {
  auto y = ops.batch_norm(*bn, ops.conv(*conv, x));
  switch (activation_) {
    case Activation::kReLU:
      return ops.relu(y);
    case Activation::kHardswish:
      return ops.hardswish(y);
    case Activation::kNone:
      break;
  }
  return y;
}

at::Tensor ConvNormActivationImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

std::string ConvNormActivationImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

SqueezeExcitationImpl::SqueezeExcitationImpl(int64_t input_channels, int64_t squeeze_channels) {
  fc1 = register_module("fc1", nn::Conv2d(nn::Conv2dOptions(input_channels, squeeze_channels, 1)));
  fc2 = register_module("fc2", nn::Conv2d(nn::Conv2dOptions(squeeze_channels, input_channels, 1)));
}

template <class Ops>
typename Ops::Value SqueezeExcitationImpl::run(Ops& ops, const typename Ops::Value& x) {
  const auto scale = ops.hardsigmoid(ops.conv(*fc2, ops.relu(ops.conv(*fc1, ops.global_avg_pool(x)))));
  return ops.mul(scale, x);
}

at::Tensor SqueezeExcitationImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

std::string SqueezeExcitationImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

InvertedResidualImpl::InvertedResidualImpl(const InvertedResidualConfig& c)
    : use_res_connect_(c.stride == 1 && c.input_channels == c.out_channels) {
  const Activation act = c.use_hardswish ? Activation::kHardswish : Activation::kReLU;
  block = nn::Sequential();
  if (c.expanded_channels != c.input_channels) block->push_back(cna(c.input_channels, c.expanded_channels, 1, act));
  const int64_t stride = c.dilation > 1 ? 1 : c.stride;
  block->push_back(
      cna(c.expanded_channels, c.expanded_channels, c.kernel, act, stride, c.dilation, /*groups=*/c.expanded_channels));
  if (c.use_se)
    block->push_back(SqueezeExcitation(c.expanded_channels, make_divisible(double(c.expanded_channels / 4))));
  block->push_back(cna(c.expanded_channels, c.out_channels, 1, Activation::kNone));
  block = register_module("block", block);
}

template <class Ops>
typename Ops::Value InvertedResidualImpl::run(Ops& ops, const typename Ops::Value& x) {
  auto result = ops.sequential(*block, x);
  return use_res_connect_ ? ops.add_(result, x) : result;
}

at::Tensor InvertedResidualImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

std::string InvertedResidualImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

MobileNetV3Impl::MobileNetV3Impl(const MobileNetV3Options& options) {
  const std::vector<InvertedResidualConfig> config = large_config(options.dilated ? 2 : 1);
  first_ = register_module("0", cna(3, config.front().input_channels, 3, Activation::kHardswish, /*stride=*/2));
  // torchvision's stage indices: 0, every strided block (C1..C4), the last layer; "aux" is the fourth from the end
  // (C2, output stride 8).
  std::vector<int64_t> stages = {0};
  for (size_t i = 0; i < config.size(); ++i) {
    blocks_.push_back(register_module(std::to_string(i + 1), InvertedResidual(config[i])));
    if (config[i].stride > 1) stages.push_back(int64_t(i) + 1);
  }
  const int64_t last_in = config.back().out_channels;
  last_ = register_module(std::to_string(config.size() + 1), cna(last_in, 6 * last_in, 1, Activation::kHardswish));
  stages.push_back(int64_t(config.size()) + 1);
  aux_index_ = stages[stages.size() - 4];
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, /*a=*/0, torch::kFanOut, torch::kLeakyReLU);
      if (c->bias.defined()) nn::init::zeros_(c->bias);
    }
  }
}

template <class Ops>
typename Ops::Features MobileNetV3Impl::run(Ops& ops, const typename Ops::Value& x) {
  typename Ops::Features f;
  auto h = ops.child(*first_, x);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    h = ops.child(*blocks_[i], h);
    if (int64_t(i) + 1 == aux_index_) f.aux = h;
  }
  f.out = ops.child(*last_, h);
  return f;
}

BackboneFeatures MobileNetV3Impl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

BackboneNames MobileNetV3Impl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

// torchvision's segmentation builders load MobileNet_V3_Large_Weights.IMAGENET1K_V1 into the backbone (the
// classification model's `features`; its `classifier` is not part of it).
std::vector<BackboneInfo> mobilenet_v3_backbones() {
  BackboneInfo b;
  b.name = "mobilenet_v3_large";
  b.build = [] { return Backbone(MobileNetV3(MobileNetV3Options{/*dilated=*/true})); };
  b.out_channels = MobileNetV3Impl::kOutChannels;
  b.aux_channels = MobileNetV3Impl::kAuxChannels;
  b.output_stride = 16;  // the last stage dilated instead of strided
  b.imagenet_weights = "mobilenet_v3_large-8738ca79.pth";
  b.imagenet_prefix = "features.";
  b.imagenet_ignore = {"classifier."};
  return {b};
}

}  // namespace petseg::model
