// DeepLabV3 heads and the model; torchvision's models/segmentation/deeplabv3.py and fcn.py, module for module.
#include "model/deeplabv3.h"

#include <ATen/ops/upsample_bilinear2d.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

#include "core/check.h"

namespace petseg::model {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t padding = 0, int64_t dilation = 1, bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(padding).dilation(dilation).bias(bias));
}

nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t k, int64_t padding = 0, int64_t dilation = 1) {
  return nn::Sequential(conv(in, out, k, padding, dilation), BatchNorm2d(out), nn::ReLU());
}

nn::Sequential deeplab_head(int64_t in_channels, int64_t num_classes) {
  return nn::Sequential(ASPP(in_channels, std::vector<int64_t>{12, 24, 36}), conv(256, 256, 3, /*padding=*/1),
                        BatchNorm2d(256), nn::ReLU(), conv(256, num_classes, 1, 0, 1, /*bias=*/true));
}

nn::Sequential fcn_head(int64_t in_channels, int64_t num_classes) {
  const int64_t inter = in_channels / 4;
  return nn::Sequential(conv(in_channels, inter, 3, /*padding=*/1), BatchNorm2d(inter), nn::ReLU(),
                        nn::Dropout(0.1), conv(inter, num_classes, 1, 0, 1, /*bias=*/true));
}

// The same head with a fresh last 1x1 convolution (index 4, so its state_dict name stays "<head>.4").
nn::Sequential with_new_last_conv(const nn::Sequential& head, int64_t in_channels, int64_t num_classes) {
  nn::Sequential rebuilt;
  auto it = head->begin();
  for (size_t i = 0; i + 1 < head->size(); ++i, ++it) rebuilt->push_back(*it);  // shares the modules
  rebuilt->push_back(conv(in_channels, num_classes, 1, 0, 1, /*bias=*/true));
  return rebuilt;
}

}  // namespace

torch::Tensor upsample_like(const torch::Tensor& x, const torch::Tensor& like) {
  const int64_t h = like.size(-2), w = like.size(-1);
  if (torch::jit::tracer::isTracing()) {
    // C++ ints are constants to the tracer; stash the traced sizes so an exported module works at any size
    // (what Python's tracer does for F.interpolate(size=x.shape[-2:])).
    for (size_t i = 0; i < 2; ++i) {
      torch::jit::tracer::ArgumentStash::stashIntArrayRefElem(
          "output_size", 2, i, torch::jit::tracer::getSizeOf(like, like.dim() - 2 + int64_t(i)));
    }
  }
  return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
}

void convert_to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  for (auto& b : module.buffers()) {
    if (b.dim() == 4) b.set_data(b.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

ASPPPoolingImpl::ASPPPoolingImpl(int64_t in_channels, int64_t out_channels) {
  // torchvision's ASPPPooling is an nn.Sequential: its children are named 0..3.
  pool_ = register_module("0", nn::AdaptiveAvgPool2d(1));
  conv_ = register_module("1", conv(in_channels, out_channels, 1));
  bn_ = register_module("2", BatchNorm2d(out_channels));
  register_module("3", nn::ReLU());
}

torch::Tensor ASPPPoolingImpl::forward(const torch::Tensor& x) {
  return upsample_like(torch::relu(bn_(conv_(pool_(x)))), x);
}

ASPPImpl::ASPPImpl(int64_t in_channels, std::vector<int64_t> rates, int64_t out_channels) {
  convs = register_module("convs", nn::ModuleList());
  convs->push_back(conv_bn_relu(in_channels, out_channels, 1));
  for (int64_t rate : rates) convs->push_back(conv_bn_relu(in_channels, out_channels, 3, rate, rate));
  convs->push_back(ASPPPooling(in_channels, out_channels));
  const int64_t branches = static_cast<int64_t>(convs->size());
  project = register_module("project", nn::Sequential(conv(branches * out_channels, out_channels, 1),
                                                      BatchNorm2d(out_channels), nn::ReLU(), nn::Dropout(0.5)));
}

torch::Tensor ASPPImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> branches;
  const size_t n = convs->size();
  for (size_t i = 0; i + 1 < n; ++i) branches.push_back(convs[i]->as<nn::Sequential>()->forward(x));
  branches.push_back(convs[n - 1]->as<ASPPPooling>()->forward(x));
  return project->forward(torch::cat(branches, 1));
}

DeepLabV3Impl::DeepLabV3Impl(const DeepLabV3Options& options) : options_(options) {
  PETSEG_CHECK(options.num_classes >= 1, "--num-classes must be >= 1, got ", options.num_classes);
  ResNetOptions ro;
  ro.depth = options.backbone;
  backbone = register_module("backbone", ResNet(ro));
  classifier = register_module("classifier", deeplab_head(2048, options.num_classes));
  if (options.aux_loss) aux_classifier = register_module("aux_classifier", fcn_head(1024, options.num_classes));
}

SegmentationOutput DeepLabV3Impl::forward(const torch::Tensor& x) {
  const BackboneFeatures f = backbone->forward(x);
  SegmentationOutput result;
  result.out = upsample_like(classifier->forward(f.layer4), x);
  if (aux_classifier) result.aux = upsample_like(aux_classifier->forward(f.layer3), x);
  return result;
}

void DeepLabV3Impl::replace_classifier(int64_t num_classes) {
  PETSEG_CHECK(num_classes >= 1, "--num-classes must be >= 1, got ", num_classes);
  options_.num_classes = num_classes;
  classifier = replace_module("classifier", with_new_last_conv(classifier, 256, num_classes));
  if (aux_classifier)
    aux_classifier = replace_module("aux_classifier", with_new_last_conv(aux_classifier, 256, num_classes));
}

void DeepLabV3Impl::freeze_backbone(bool freeze) {
  backbone_frozen_ = freeze;
  for (auto& p : backbone->parameters()) p.set_requires_grad(!freeze);
  if (freeze) backbone->eval();
}

void DeepLabV3Impl::train(bool on) {
  torch::nn::Module::train(on);
  if (backbone_frozen_) backbone->eval();
}

}  // namespace petseg::model
