// ResNet-50/101 as torchvision builds it (Bottleneck blocks, stride and dilation on conv2), with
// replace_stride_with_dilation for segmentation; submodules under torchvision's names (conv1, layer3.5.conv2,
// layer1.0.downsample.0, ...), so state dicts load by name. The backbones resnet50/resnet101 of model/registry.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <string>
#include <vector>

#include "model/backbone.h"
#include "model/batchnorm.h"
#include "model/registry.h"  // kBackboneChoices, which callers took from here before the registry

namespace petseg::model {

class BottleneckImpl : public torch::nn::Module, public GraphEmitter {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation, torch::nn::Sequential downsample);
  // [N,inplanes,H,W] -> [N,planes*4,H/stride,W/stride]
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit(GraphOps& ops, const std::string& x) override;

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& x);
};
TORCH_MODULE(Bottleneck);

struct ResNetOptions {
  std::string depth = "resnet101";                                         // "resnet50" | "resnet101"
  std::array<bool, 3> replace_stride_with_dilation = {false, true, true};  // output stride 8
};

// The feature extractor (no avgpool/fc), as torchvision's IntermediateLayerGetter keeps it.
class ResNetImpl : public BackboneImpl {
 public:
  explicit ResNetImpl(const ResNetOptions& options = {});
  // [N,3,H,W] -> aux = layer3 [N,1024,H/8,W/8], out = layer4 [N,2048,H/8,W/8] (with the default dilation)
  BackboneFeatures forward(const at::Tensor& x) override;
  BackboneNames emit(GraphOps& ops, const std::string& x) override;

  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};

 private:
  template <class Ops>
  typename Ops::Features run(Ops& ops, const typename Ops::Value& x);
  torch::nn::Sequential make_layer(int64_t planes, int64_t blocks, int64_t stride, bool dilate);
  int64_t inplanes_ = 64;
  int64_t dilation_ = 1;
};
TORCH_MODULE(ResNet);

// Blocks per stage: resnet50 {3,4,6,3}, resnet101 {3,4,23,3}; an unknown name is an error listing the valid ones.
std::array<int64_t, 4> resnet_blocks(const std::string& depth);

}  // namespace petseg::model
