// LR-ASPP and its head, module for module as torchvision's lraspp.py, and the registry's LR-ASPP model.
#include "model/lraspp.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "core/check.h"
#include "model/batchnorm.h"
#include "model/eager_ops.h"
#include "model/registry.h"

namespace petseg::model {

namespace nn = torch::nn;

LRASPPHeadImpl::LRASPPHeadImpl(int64_t low_channels, int64_t high_channels, int64_t num_classes,
                               int64_t inter_channels) {
  cbr =
      register_module("cbr", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(high_channels, inter_channels, 1).bias(false)),
                                            BatchNorm2d(inter_channels), nn::ReLU()));
  scale = register_module(
      "scale",
      nn::Sequential(nn::AdaptiveAvgPool2d(1),
                     nn::Conv2d(nn::Conv2dOptions(high_channels, inter_channels, 1).bias(false)), nn::Sigmoid()));
  low_classifier = register_module("low_classifier", nn::Conv2d(nn::Conv2dOptions(low_channels, num_classes, 1)));
  high_classifier = register_module("high_classifier", nn::Conv2d(nn::Conv2dOptions(inter_channels, num_classes, 1)));
}

template <class Ops>
typename Ops::Value LRASPPHeadImpl::run(Ops& ops, const typename Ops::Value& low, const typename Ops::Value& high) {
  const auto x = ops.mul(ops.sequential(*cbr, high), ops.sequential(*scale, high));
  return ops.add(ops.conv(*low_classifier, low), ops.conv(*high_classifier, ops.upsample_like(x, low)));
}

at::Tensor LRASPPHeadImpl::forward(const at::Tensor& low, const at::Tensor& high) {
  EagerOps ops;
  return run(ops, low, high);
}

std::string LRASPPHeadImpl::emit(GraphOps& ops, const std::string& low, const std::string& high) {
  return run(ops, low, high);
}

LRASPPImpl::LRASPPImpl(const LRASPPOptions& options) : SegmentationModelImpl("LRASPP", options.num_classes) {
  const BackboneInfo& b = find_backbone(options.backbone);
  backbone = register_module("backbone", b.build());
  classifier = register_module("classifier",
                               LRASPPHead(b.aux_channels, b.out_channels, options.num_classes, options.inter_channels));
}

template <class Ops>
typename Ops::Output LRASPPImpl::run(Ops& ops, const typename Ops::Value& x) {
  const typename Ops::Features f = ops.child(*backbone, x);
  typename Ops::Output result;
  result.out = ops.upsample_like(ops.child(*classifier, f.aux, f.out), x);
  return result;
}

SegmentationOutput LRASPPImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

SegmentationNames LRASPPImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

// torchvision's lraspp_mobilenet_v3_large: "low" is features.4 (C2, stride 8), "high" features.16.
std::vector<ModelInfo> lraspp_models() {
  ModelInfo m;
  m.name = "lraspp_mobilenet_v3_large";
  m.arch = "lraspp";
  m.backbone = "mobilenet_v3_large";
  m.build = [](int64_t num_classes, bool aux_loss) {
    PETSEG_CHECK(!aux_loss, "lraspp_mobilenet_v3_large has no aux head (torchvision's neither): drop --aux-loss");
    return SegmentationModel(LRASPP(LRASPPOptions{"mobilenet_v3_large", num_classes}));
  };
  m.replaced_prefixes = {"classifier.low_classifier.", "classifier.high_classifier."};
  m.coco_weights = "lraspp_mobilenet_v3_large-d234d4ea.pth";
  return {m};
}

}  // namespace petseg::model
