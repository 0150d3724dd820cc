// ResNet with torchvision's layout and initialization.
#include "model/resnet.h"

#include <torch/nn/init.h>

#include "core/choices.h"
#include "model/eager_ops.h"
#include "model/registry.h"

namespace petseg::model {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(padding).dilation(dilation).bias(false));
}

}  // namespace

std::array<int64_t, 4> resnet_blocks(const std::string& depth) {
  check_choice("ResNet depth", depth, {"resnet50", "resnet101"});
  return depth == "resnet50" ? std::array<int64_t, 4>{3, 4, 6, 3} : std::array<int64_t, 4>{3, 4, 23, 3};
}

BottleneckImpl::BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation, nn::Sequential ds) {
  conv1 = register_module("conv1", conv(inplanes, planes, 1));
  bn1 = register_module("bn1", BatchNorm2d(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride, /*padding=*/dilation, dilation));
  bn2 = register_module("bn2", BatchNorm2d(planes));
  conv3 = register_module("conv3", conv(planes, planes * kExpansion, 1));
  bn3 = register_module("bn3", BatchNorm2d(planes * kExpansion));
  if (ds) downsample = register_module("downsample", ds);
}

template <class Ops>
typename Ops::Value BottleneckImpl::run(Ops& ops, const typename Ops::Value& x) {
  auto out = ops.relu(ops.batch_norm(*bn1, ops.conv(*conv1, x)));
  out = ops.relu(ops.batch_norm(*bn2, ops.conv(*conv2, out)));
  out = ops.batch_norm(*bn3, ops.conv(*conv3, out));
  return ops.relu(ops.add_(out, downsample ? ops.sequential(*downsample, x) : x));
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

std::string BottleneckImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

ResNetImpl::ResNetImpl(const ResNetOptions& options) {
  const auto blocks = resnet_blocks(options.depth);
  conv1 = register_module("conv1", conv(3, 64, 7, /*stride=*/2, /*padding=*/3));
  bn1 = register_module("bn1", BatchNorm2d(64));
  layer1 = register_module("layer1", make_layer(64, blocks[0], 1, false));
  layer2 = register_module("layer2", make_layer(128, blocks[1], 2, options.replace_stride_with_dilation[0]));
  layer3 = register_module("layer3", make_layer(256, blocks[2], 2, options.replace_stride_with_dilation[1]));
  layer4 = register_module("layer4", make_layer(512, blocks[3], 2, options.replace_stride_with_dilation[2]));
  // torchvision's initialization: He (fan_out) for convolutions, BatchNorm to identity.
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, /*a=*/0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = m->as<BatchNorm2dImpl>()) {
      nn::init::ones_(b->weight);
      nn::init::zeros_(b->bias);
    }
  }
}

nn::Sequential ResNetImpl::make_layer(int64_t planes, int64_t blocks, int64_t stride, bool dilate) {
  // The first block of a dilated stage keeps the previous dilation; the others use the new one.
  const int64_t previous_dilation = dilation_;
  if (dilate) {
    dilation_ *= stride;
    stride = 1;
  }
  nn::Sequential ds{nullptr};
  if (stride != 1 || inplanes_ != planes * BottleneckImpl::kExpansion) {
    ds = nn::Sequential(conv(inplanes_, planes * BottleneckImpl::kExpansion, 1, stride),
                        BatchNorm2d(planes * BottleneckImpl::kExpansion));
  }
  nn::Sequential layer;
  layer->push_back(Bottleneck(inplanes_, planes, stride, previous_dilation, ds));
  inplanes_ = planes * BottleneckImpl::kExpansion;
  for (int64_t i = 1; i < blocks; ++i) layer->push_back(Bottleneck(inplanes_, planes, 1, dilation_, nullptr));
  return layer;
}

template <class Ops>
typename Ops::Features ResNetImpl::run(Ops& ops, const typename Ops::Value& x) {
  auto h = ops.relu(ops.batch_norm(*bn1, ops.conv(*conv1, x)));
  h = ops.max_pool(h, /*kernel=*/3, /*stride=*/2, /*padding=*/1);
  h = ops.sequential(*layer2, ops.sequential(*layer1, h));
  typename Ops::Features f;
  f.aux = ops.sequential(*layer3, h);
  f.out = ops.sequential(*layer4, f.aux);
  return f;
}

BackboneFeatures ResNetImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

BackboneNames ResNetImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

// torchvision's resnet50/101(replace_stride_with_dilation=[False, True, True]) as the segmentation models build
// them; their ImageNet files (ResNet*_Weights.IMAGENET1K_V1, the builders' weights_backbone default) hold the
// backbone's keys as they are, plus the classifier fc.
std::vector<BackboneInfo> resnet_backbones() {
  std::vector<BackboneInfo> backbones;
  for (const auto& [depth, file] : {std::pair<std::string, std::string>{"resnet50", "resnet50-0676ba61.pth"},
                                    {"resnet101", "resnet101-63fe2227.pth"}}) {
    BackboneInfo b;
    b.name = depth;
    b.build = [depth = depth] {
      ResNetOptions o;
      o.depth = depth;
      return Backbone(ResNet(o));
    };
    b.out_channels = 2048;
    b.aux_channels = 1024;
    b.output_stride = 8;  // layer3 and layer4 dilated instead of strided
    b.imagenet_weights = file;
    b.imagenet_ignore = {"fc."};
    backbones.push_back(std::move(b));
  }
  return backbones;
}

}  // namespace petseg::model
