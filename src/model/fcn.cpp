// FCN and its head, module for module as torchvision's fcn.py, and the registry's FCN models.
#include "model/fcn.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>

#include "model/batchnorm.h"
#include "model/registry.h"

namespace petseg::model {

namespace nn = torch::nn;

nn::Sequential fcn_head(int64_t in_channels, int64_t num_classes) {
  const int64_t inter = in_channels / 4;
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in_channels, inter, 3).padding(1).bias(false)), BatchNorm2d(inter),
                        nn::ReLU(), nn::Dropout(0.1), nn::Conv2d(nn::Conv2dOptions(inter, num_classes, 1)));
}

FCNImpl::FCNImpl(const FCNOptions& options) : SimpleSegmentationModelImpl("FCN", options.num_classes) {
  const BackboneInfo& b = find_backbone(options.backbone);
  set_parts(b.build(), fcn_head(b.out_channels, options.num_classes),
            options.aux_loss ? fcn_head(b.aux_channels, options.num_classes) : nn::Sequential(nullptr));
}

std::vector<ModelInfo> fcn_models() {
  return simple_model_family("fcn",
                             {{"resnet50", "fcn_resnet50_coco-1167a1af.pth"},
                              {"resnet101", "fcn_resnet101_coco-7ecb50ca.pth"}},
                             [](const std::string& backbone, int64_t num_classes, bool aux_loss) {
                               return SegmentationModel(FCN(FCNOptions{backbone, num_classes, aux_loss}));
                             });
}

}  // namespace petseg::model
