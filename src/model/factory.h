// Building the model the way the command line asks for it: backbone, classes, aux head, pretrained weights
// (a torchvision DeepLabV3 checkpoint, or an ImageNet ResNet for the backbone only), frozen backbone.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/deeplabv3.h"
#include "model/weights.h"

namespace petseg::model {

struct ModelConfig {
  std::string backbone = "resnet101";
  int64_t num_classes = 3;
  bool aux_loss = false;
  std::filesystem::path weights;           // deeplabv3_resnet101_coco-586e9e4e.pth and the like
  std::filesystem::path backbone_weights;  // resnet101-63fe2227.pth and the like
  bool freeze_backbone = false;
};

struct BuiltModel {
  DeepLabV3 model{nullptr};
  LoadReport weights_report;
  LoadReport backbone_report;
};

// Builds the model and loads what the config names; the classifier layers that transfer learning replaces
// (classifier.4, aux_classifier.4) are skipped when their shape differs, and reported. An aux head in the file
// is ignored (and reported) when the model is built without one.
BuiltModel build_model(const ModelConfig& config);
// The architecture the config describes, with the weight files it names NOT read: for a model whose values come
// from elsewhere (a checkpoint, DataParallel's primary model). The backbone is frozen as the config says.
DeepLabV3 build_architecture(const ModelConfig& config);
// One line per fact for the log: "loaded 344 tensors from X", "replaced for transfer learning: ...".
std::vector<std::string> describe(const BuiltModel& built, const ModelConfig& config);

}  // namespace petseg::model
