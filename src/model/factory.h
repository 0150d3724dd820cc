// Building the model the way the command line asks for it: model (arch + backbone), classes, aux head, pretrained
// weights (a torchvision segmentation checkpoint, or an ImageNet classifier for the backbone only), frozen backbone.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/deeplabv3.h"
#include "model/registry.h"
#include "model/segmentation.h"
#include "model/weights.h"

namespace petseg::model {

struct ModelConfig {
  std::string arch = "deeplabv3";  // deeplabv3 | fcn | lraspp (a config saved without it means deeplabv3)
  std::string backbone = "resnet101";
  int64_t num_classes = 3;
  bool aux_loss = false;
  std::filesystem::path weights;           // deeplabv3_resnet101_coco-586e9e4e.pth and the like
  std::filesystem::path backbone_weights;  // resnet101-63fe2227.pth, mobilenet_v3_large-8738ca79.pth and the like
  bool freeze_backbone = false;
};

// torchvision's name of the configured model: arch + "_" + backbone ("lraspp_mobilenet_v3_large").
std::string model_name(const ModelConfig& config);
// --model NAME: sets arch and backbone; an unknown name is an error listing kModelChoices.
void set_model_name(ModelConfig& config, const std::string& name);
// The registry's entry for the config's model: an unknown backbone is named as such, a known one torchvision does not
// combine with the arch names the models there are.
const ModelInfo& model_info(const ModelConfig& config);

struct BuiltSegmentationModel {
  SegmentationModel model{nullptr};
  LoadReport weights_report;
  LoadReport backbone_report;
};

// Builds the model and loads what the config names; the head layers that transfer learning replaces (the
// registry's replaced_prefixes: classifier.4, aux_classifier.4, ...) are skipped when their shape differs, and
// reported. An aux head in the file is ignored (and reported) when the model is built without one.
BuiltSegmentationModel build_segmentation_model(const ModelConfig& config);
// The architecture the config describes, with the weight files it names NOT read: for a model whose values come
// from elsewhere (a checkpoint, DataParallel's primary model). The backbone is frozen as the config says.
SegmentationModel build_segmentation_architecture(const ModelConfig& config);
// One line per fact for the log: "loaded 344 tensors from X", "replaced for transfer learning: ...".
std::vector<std::string> describe(const BuiltSegmentationModel& built, const ModelConfig& config);

}  // namespace petseg::model
