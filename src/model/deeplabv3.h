// DeepLabV3 (ASPP head, optional FCN aux head) on a dilated backbone, as torchvision's deeplabv3_resnet50/101 and
// deeplabv3_mobilenet_v3_large: every submodule under torchvision's state_dict name (classifier.0.convs.4.1,
// aux_classifier.4, ...). Transfer learning replaces the last classifier convolutions (classifier.4, aux_classifier.4).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "model/batchnorm.h"
#include "model/segmentation.h"

namespace petseg::model {

class ASPPPoolingImpl : public torch::nn::Module, public GraphEmitter {
 public:
  ASPPPoolingImpl(int64_t in_channels, int64_t out_channels);
  // [N,C,h,w] -> [N,256,h,w]: global average, 1x1 conv, BN, ReLU, upsampled back (bilinear)
  at::Tensor forward(const at::Tensor& x);
  std::string emit(GraphOps& ops, const std::string& x) override;

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& x);
  torch::nn::AdaptiveAvgPool2d pool_{nullptr};
  torch::nn::Conv2d conv_{nullptr};
  BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ASPPPooling);

class ASPPImpl : public torch::nn::Module, public GraphEmitter {
 public:
  ASPPImpl(int64_t in_channels, std::vector<int64_t> rates, int64_t out_channels = 256);
  // [N,in,h,w] -> [N,256,h,w]
  at::Tensor forward(const at::Tensor& x);
  std::string emit(GraphOps& ops, const std::string& x) override;

  torch::nn::ModuleList convs{nullptr};
  torch::nn::Sequential project{nullptr};

 private:
  template <class Ops>
  typename Ops::Value run(Ops& ops, const typename Ops::Value& x);
};
TORCH_MODULE(ASPP);

struct DeepLabV3Options {
  std::string backbone = "resnet101";  // a registered backbone: resnet50 | resnet101 | mobilenet_v3_large
  int64_t num_classes = 21;            // torchvision's COCO-with-VOC-labels checkpoints
  bool aux_loss = false;               // build the FCN aux head on the backbone's aux features (layer3, features.4)
};

class DeepLabV3Impl : public SimpleSegmentationModelImpl {
 public:
  explicit DeepLabV3Impl(const DeepLabV3Options& options = {});
  DeepLabV3Options options() const;

 private:
  std::string backbone_name_;
};
TORCH_MODULE(DeepLabV3);

// torchvision's DeepLabHead: .0 ASPP(12, 24, 36), .1 3x3 conv 256->256, .2 BN, .3 ReLU, .4 1x1 conv ->classes.
// [N,in,h,w] -> [N,classes,h,w]
torch::nn::Sequential deeplab_head(int64_t in_channels, int64_t num_classes);

}  // namespace petseg::model
