// DeepLabV3 (ASPP head, optional FCN aux head) on a dilated ResNet, as torchvision's deeplabv3_resnet50/101:
// every submodule under torchvision's state_dict name (classifier.0.convs.4.1, aux_classifier.4, ...). Transfer
// learning replaces the last classifier convolutions (classifier.4, aux_classifier.4) for the pet classes.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "model/resnet.h"

namespace petseg::model {

class ASPPPoolingImpl : public torch::nn::Module {
 public:
  ASPPPoolingImpl(int64_t in_channels, int64_t out_channels);
  // [N,C,h,w] -> [N,256,h,w]: global average, 1x1 conv, BN, ReLU, upsampled back (bilinear)
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::AdaptiveAvgPool2d pool_{nullptr};
  torch::nn::Conv2d conv_{nullptr};
  BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ASPPPooling);

class ASPPImpl : public torch::nn::Module {
 public:
  ASPPImpl(int64_t in_channels, std::vector<int64_t> rates, int64_t out_channels = 256);
  // [N,2048,h,w] -> [N,256,h,w]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::ModuleList convs{nullptr};
  torch::nn::Sequential project{nullptr};
};
TORCH_MODULE(ASPP);

struct DeepLabV3Options {
  std::string backbone = "resnet101";  // resnet50 | resnet101
  int64_t num_classes = 21;            // torchvision's COCO-with-VOC-labels checkpoints
  bool aux_loss = false;               // build the FCN aux head on layer3
};

struct SegmentationOutput {
  torch::Tensor out;  // [N,C,H,W] logits at the input size
  torch::Tensor aux;  // [N,C,H,W] aux logits, undefined without the aux head
};

class DeepLabV3Impl : public torch::nn::Module {
 public:
  explicit DeepLabV3Impl(const DeepLabV3Options& options = {});
  // [N,3,H,W] -> out [N,C,H,W] (and aux [N,C,H,W])
  SegmentationOutput forward(const torch::Tensor& x);

  // Transfer learning: fresh classifier.4 (and aux_classifier.4) with `num_classes` outputs.
  void replace_classifier(int64_t num_classes);
  // Keeps the backbone fixed: no gradients, BatchNorm statistics frozen (eval mode even while training).
  void freeze_backbone(bool freeze = true);
  bool backbone_frozen() const { return backbone_frozen_; }
  void train(bool on = true) override;
  const DeepLabV3Options& options() const { return options_; }
  int64_t num_classes() const { return options_.num_classes; }

  ResNet backbone{nullptr};
  torch::nn::Sequential classifier{nullptr};
  torch::nn::Sequential aux_classifier{nullptr};

 private:
  DeepLabV3Options options_;
  bool backbone_frozen_ = false;
};
TORCH_MODULE(DeepLabV3);

// Moves every 4-D parameter and buffer to channels_last memory (NHWC), as Python's
// model.to(memory_format=torch.channels_last); inputs should be converted the same way.
void convert_to_channels_last(torch::nn::Module& module);

// Bilinear (align_corners=False) resize of x to the spatial size of `like`; stays shape-generic when traced.
torch::Tensor upsample_like(const torch::Tensor& x, const torch::Tensor& like);

}  // namespace petseg::model
