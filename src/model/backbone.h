// The backbone interface of the segmentation models: a feature extractor that returns what torchvision's
// IntermediateLayerGetter returns to the heads (the last features, and the stride-8 ones for an aux or "low" head).
// The backbones themselves (resnet.h, mobilenet_v3.h) are registered by name in model/registry.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <type_traits>

#include "model/graph_ops.h"

namespace petseg::model {

struct BackboneFeatures {
  at::Tensor aux;  // stride 8: ResNet layer3 (dilated), MobileNetV3 features.4; the aux head's (LR-ASPP's "low") input
  at::Tensor out;  // the last features: ResNet layer4 (stride 8), MobileNetV3 features.16 (stride 16)
};

class BackboneImpl : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // [N,3,H,W] -> aux [N,Ca,H/8,W/8], out [N,Co,H/s,W/s]
  virtual BackboneFeatures forward(const at::Tensor& x) = 0;
  // The same forward as graph nodes (model/graph_ops.h).
  virtual BackboneNames emit(GraphOps& ops, const std::string& x) = 0;
};

// A handle to any backbone (torch::nn::ModuleHolder semantics: shared, -> access, nullptr when empty).
class Backbone : public torch::nn::ModuleHolder<BackboneImpl> {
 public:
  /* implicit */ Backbone(std::nullptr_t) : ModuleHolder(nullptr) {}
  /* implicit */ Backbone(std::shared_ptr<BackboneImpl> impl) : ModuleHolder(std::move(impl)) {}
  template <typename Impl, typename = std::enable_if_t<std::is_base_of_v<BackboneImpl, Impl>>>
  /* implicit */ Backbone(const torch::nn::ModuleHolder<Impl>& backbone)
      : ModuleHolder(std::shared_ptr<BackboneImpl>(backbone.ptr())) {}
};

}  // namespace petseg::model
