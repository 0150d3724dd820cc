// Model construction (through the registry) and pretrained-weight loading policies.
#include "model/factory.h"

#include "core/check.h"

namespace petseg::model {
namespace {

LoadReport load_model_weights(SegmentationModelImpl& model, const ModelInfo& info, const ModelConfig& config) {
  const StateDict state = read_state_dict(config.weights);
  LoadPolicy policy;
  policy.skip_on_shape_mismatch = info.replaced_prefixes;
  if (!config.aux_loss && !info.aux_prefix.empty()) policy.ignore = {info.aux_prefix};
  return load_state_dict(model, state, policy, config.weights.string());
}

LoadReport load_backbone_weights(SegmentationModelImpl& model, const BackboneInfo& info, const ModelConfig& config) {
  const StateDict state = read_state_dict(config.backbone_weights);
  LoadPolicy policy;
  policy.source_prefix = info.imagenet_prefix;
  policy.target_prefix = "backbone.";
  policy.ignore = info.imagenet_ignore;  // the ImageNet classifier
  policy.partial = true;
  return load_state_dict(model, state, policy, config.backbone_weights.string());
}

std::vector<std::string> describe_reports(const LoadReport& weights, const LoadReport& backbone,
                                          const ModelConfig& config) {
  std::vector<std::string> lines;
  lines.push_back(detail::str_cat("model: ", model_name(config), ", ", config.num_classes, " classes",
                                  config.aux_loss ? ", aux head" : "",
                                  config.freeze_backbone ? ", backbone frozen" : ""));
  auto report = [&](const LoadReport& r, const std::filesystem::path& file) {
    lines.push_back(detail::str_cat("model: loaded ", r.loaded, " tensors from ", file.string()));
    for (const auto& s : r.skipped) lines.push_back("model: replaced for transfer learning: " + s);
    if (!r.ignored.empty()) {
      lines.push_back(
          detail::str_cat("model: ignored ", r.ignored.size(), " tensors of the file (", r.ignored[0], ", ...)"));
    }
  };
  if (!config.weights.empty()) report(weights, config.weights);
  if (!config.backbone_weights.empty()) report(backbone, config.backbone_weights);
  if (config.weights.empty() && config.backbone_weights.empty()) {
    lines.push_back("model: random initialization (no --weights or --backbone-weights)");
  }
  return lines;
}

}  // namespace

const ModelInfo& model_info(const ModelConfig& config) {
  find_backbone(config.backbone);
  check_choice("model", model_name(config), kModelChoices);
  return find_model(model_name(config));
}

std::string model_name(const ModelConfig& config) { return config.arch + "_" + config.backbone; }

void set_model_name(ModelConfig& config, const std::string& name) {
  check_choice("--model", name, kModelChoices);
  const ModelInfo& info = find_model(name);
  config.arch = info.arch;
  config.backbone = info.backbone;
}

BuiltSegmentationModel build_segmentation_model(const ModelConfig& config) {
  PETSEG_CHECK(config.weights.empty() || config.backbone_weights.empty(),
               "--weights and --backbone-weights exclude each other (the first already holds a backbone)");
  const ModelInfo& info = model_info(config);
  BuiltSegmentationModel built;
  built.model = info.build(config.num_classes, config.aux_loss);
  if (!config.weights.empty()) built.weights_report = load_model_weights(*built.model, info, config);
  if (!config.backbone_weights.empty()) {
    built.backbone_report = load_backbone_weights(*built.model, find_backbone(config.backbone), config);
  }
  if (config.freeze_backbone) built.model->freeze_backbone();
  return built;
}

SegmentationModel build_segmentation_architecture(const ModelConfig& config) {
  ModelConfig architecture = config;
  architecture.weights.clear();
  architecture.backbone_weights.clear();
  return build_segmentation_model(architecture).model;
}

std::vector<std::string> describe(const BuiltSegmentationModel& built, const ModelConfig& config) {
  return describe_reports(built.weights_report, built.backbone_report, config);
}

}  // namespace petseg::model
