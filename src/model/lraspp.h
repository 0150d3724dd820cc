// LR-ASPP (torchvision's models/segmentation/lraspp.py): a light head on the backbone's last ("high") and stride-8
// ("low") features, no aux head; lraspp_mobilenet_v3_large in the registry. Transfer learning replaces
// classifier.low_classifier and classifier.high_classifier.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <string>

#include "model/segmentation.h"

namespace petseg::model {

class LRASPPHeadImpl : public torch::nn::Module {
 public:
  LRASPPHeadImpl(int64_t low_channels, int64_t high_channels, int64_t num_classes, int64_t inter_channels);
  // low [N,Cl,h8,w8], high [N,Ch,h16,w16] -> [N,classes,h8,w8]
  at::Tensor forward(const at::Tensor& low, const at::Tensor& high);
  std::string emit(GraphOps& ops, const std::string& low, const std::string& high);

  torch::nn::Sequential cbr{nullptr};    // 1x1 conv high->inter, BN, ReLU
  torch::nn::Sequential scale{nullptr};  // global average, 1x1 conv high->inter, sigmoid
  torch::nn::Conv2d low_classifier{nullptr}, high_classifier{nullptr};

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& low, const typename Ops::Value& high);
};
TORCH_MODULE(LRASPPHead);

struct LRASPPOptions {
  std::string backbone = "mobilenet_v3_large";  // a registered backbone
  int64_t num_classes = 21;
  int64_t inter_channels = 128;
};

class LRASPPImpl : public SegmentationModelImpl {
 public:
  explicit LRASPPImpl(const LRASPPOptions& options = {});
  // [N,3,H,W] -> out [N,C,H,W] (no aux)
  SegmentationOutput forward(const at::Tensor& x) override;
  SegmentationNames emit(GraphOps& ops, const std::string& x) override;

  Backbone backbone{nullptr};
  LRASPPHead classifier{nullptr};

 private:
  template <class Ops>
  typename Ops::Output run(Ops& ops, const typename Ops::Value& x);
};
TORCH_MODULE(LRASPP);

}  // namespace petseg::model
