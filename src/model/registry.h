// The models and backbones petseg builds, by torchvision's names: builder, the parameters transfer learning
// replaces, torchvision's weight files. Each family's file (deeplabv3, fcn, lraspp, resnet, mobilenet_v3.cpp) holds
// its entries; a new family adds its list function to registry.cpp's table.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/choices.h"
#include "model/backbone.h"
#include "model/segmentation.h"

namespace petseg::model {

struct BackboneInfo {
  std::string name;                 // "resnet101", "mobilenet_v3_large"
  std::function<Backbone()> build;  // the segmentation version (dilated as torchvision's builders make it)
  int64_t out_channels = 0;         // BackboneFeatures::out
  int64_t aux_channels = 0;         // BackboneFeatures::aux
  // How many input pixels one pixel of BackboneFeatures::out spans (the dilated ResNets 8, MobileNetV3 16): an
  // inference window smaller than this would give the heads less than one feature.
  int output_stride = 0;
  // torchvision's ImageNet classifier file the segmentation builders' weights_backbone default loads, and how its
  // keys map onto the backbone: keys under `imagenet_prefix` (stripped) fill "backbone.", `imagenet_ignore` are
  // the classifier's (reported as ignored).
  std::string imagenet_weights;              // "resnet101-63fe2227.pth", "mobilenet_v3_large-8738ca79.pth"
  std::string imagenet_prefix;               // "" (ResNet), "features." (MobileNetV3)
  std::vector<std::string> imagenet_ignore;  // "fc." (ResNet), "classifier." (MobileNetV3)
};

struct ModelInfo {
  std::string name;      // torchvision's builder name: arch + "_" + backbone, "lraspp_mobilenet_v3_large"
  std::string arch;      // "deeplabv3", "fcn", "lraspp"
  std::string backbone;  // a BackboneInfo name
  std::function<SegmentationModel(int64_t num_classes, bool aux_loss)> build;  // random initialization
  // The last layers of the heads, replaced when the class count differs from a weight file's (transfer learning).
  std::vector<std::string> replaced_prefixes;  // "classifier.4.", "aux_classifier.4."
  std::string aux_prefix;  // the aux head's parameters: "aux_classifier." ("" when the model has none)
  // torchvision's COCO-with-VOC-labels checkpoint (21 classes; with the aux head where the model has one).
  std::string coco_weights;  // "deeplabv3_resnet101_coco-586e9e4e.pth"
};

const std::vector<ModelInfo>& registered_models();
const std::vector<BackboneInfo>& registered_backbones();
// By name; an unknown one is an error listing the valid names.
const ModelInfo& find_model(const std::string& name);
const BackboneInfo& find_backbone(const std::string& name);

Choices model_choices();
Choices backbone_choices();
// --model and --backbone: every registered name (initialized before anything declared after this header).
inline const Choices kModelChoices = model_choices();
inline const Choices kBackboneChoices = backbone_choices();

// The families' entries, each defined in the family's own file.
std::vector<BackboneInfo> resnet_backbones();
std::vector<BackboneInfo> mobilenet_v3_backbones();
// One _SimpleSegmentationModel family (DeepLabV3, FCN): a model per {backbone, torchvision's COCO-VOC file}, all
// with the heads transfer learning replaces there (classifier.4, aux_classifier.4).
std::vector<ModelInfo> simple_model_family(
    const std::string& arch, const std::vector<std::pair<std::string, std::string>>& backbone_files,
    const std::function<SegmentationModel(const std::string& backbone, int64_t num_classes, bool aux_loss)>& build);
std::vector<ModelInfo> deeplabv3_models();
std::vector<ModelInfo> fcn_models();
std::vector<ModelInfo> lraspp_models();

}  // namespace petseg::model
