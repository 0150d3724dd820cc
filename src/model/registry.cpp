// The table of families; lookups by name with errors that list the valid names.
#include "model/registry.h"

#include "core/check.h"

namespace petseg::model {
namespace {

template <typename Info>
const Info& find(const std::vector<Info>& infos, const char* what, const std::string& name, const Choices& valid) {
  for (const Info& info : infos) {
    if (info.name == name) return info;
  }
  check_choice(what, name, valid);  // throws, naming the valid ones
  PETSEG_FAIL("unreachable");
}

}  // namespace

const std::vector<BackboneInfo>& registered_backbones() {
  static const std::vector<BackboneInfo> backbones = [] {
    std::vector<BackboneInfo> all;
    for (auto family : {resnet_backbones, mobilenet_v3_backbones}) {
      for (auto& b : family()) all.push_back(std::move(b));
    }
    return all;
  }();
  return backbones;
}

const std::vector<ModelInfo>& registered_models() {
  static const std::vector<ModelInfo> models = [] {
    std::vector<ModelInfo> all;
    for (auto family : {deeplabv3_models, fcn_models, lraspp_models}) {
      for (auto& m : family()) all.push_back(std::move(m));
    }
    return all;
  }();
  return models;
}

Choices model_choices() {
  Choices names;
  for (const auto& m : registered_models()) names.push_back(m.name);
  return names;
}

Choices backbone_choices() {
  Choices names;
  for (const auto& b : registered_backbones()) names.push_back(b.name);
  return names;
}

const ModelInfo& find_model(const std::string& name) {
  return find(registered_models(), "model", name, model_choices());
}

const BackboneInfo& find_backbone(const std::string& name) {
  return find(registered_backbones(), "backbone", name, backbone_choices());
}


std::vector<ModelInfo> simple_model_family(
    const std::string& arch, const std::vector<std::pair<std::string, std::string>>& backbone_files,
    const std::function<SegmentationModel(const std::string& backbone, int64_t num_classes, bool aux_loss)>& build) {
  std::vector<ModelInfo> models;
  for (const auto& [backbone, file] : backbone_files) {
    ModelInfo m;
    m.name = arch + "_" + backbone;
    m.arch = arch;
    m.backbone = backbone;
    m.build = [build, backbone = backbone](int64_t num_classes, bool aux_loss) {
      return build(backbone, num_classes, aux_loss);
    };
    m.replaced_prefixes = {"classifier.4.", "aux_classifier.4."};
    m.aux_prefix = "aux_classifier.";
    m.coco_weights = file;
    models.push_back(std::move(m));
  }
  return models;
}

}  // namespace petseg::model
