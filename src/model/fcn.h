// FCN (torchvision's models/segmentation/fcn.py): an FCNHead on the dilated ResNet's layer4, and optionally one on
// layer3 as the aux head; fcn_resnet50 and fcn_resnet101 in the registry. FCNHead is also DeepLabV3's aux head.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <string>

#include "model/segmentation.h"

namespace petseg::model {

// torchvision's FCNHead: .0 3x3 conv in->in/4, .1 BN, .2 ReLU, .3 Dropout(0.1), .4 1x1 conv ->classes (with bias).
// [N,in,h,w] -> [N,classes,h,w]
torch::nn::Sequential fcn_head(int64_t in_channels, int64_t num_classes);

struct FCNOptions {
  std::string backbone = "resnet101";  // a registered backbone (torchvision builds FCN on resnet50 and resnet101)
  int64_t num_classes = 21;
  bool aux_loss = false;  // the FCNHead on the backbone's aux features (layer3)
};

class FCNImpl : public SimpleSegmentationModelImpl {
 public:
  explicit FCNImpl(const FCNOptions& options = {});
};
TORCH_MODULE(FCN);

}  // namespace petseg::model
