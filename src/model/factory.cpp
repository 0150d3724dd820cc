// Model construction and pretrained-weight loading policies.
#include "model/factory.h"

#include "core/check.h"

namespace petseg::model {

BuiltModel build_model(const ModelConfig& config) {
  PETSEG_CHECK(config.weights.empty() || config.backbone_weights.empty(),
               "--weights and --backbone-weights exclude each other (the first already holds a backbone)");
  BuiltModel built;
  DeepLabV3Options options;
  options.backbone = config.backbone;
  options.num_classes = config.num_classes;
  options.aux_loss = config.aux_loss;
  built.model = DeepLabV3(options);
  if (!config.weights.empty()) {
    const StateDict state = read_state_dict(config.weights);
    LoadPolicy policy;
    policy.skip_on_shape_mismatch = {"classifier.4.", "aux_classifier.4."};
    if (!config.aux_loss) policy.ignore = {"aux_classifier."};
    built.weights_report = load_state_dict(*built.model, state, policy, config.weights.string());
  }
  if (!config.backbone_weights.empty()) {
    const StateDict state = read_state_dict(config.backbone_weights);
    LoadPolicy policy;
    policy.target_prefix = "backbone.";
    policy.ignore = {"fc."};  // the ImageNet classifier
    policy.partial = true;
    built.backbone_report = load_state_dict(*built.model, state, policy, config.backbone_weights.string());
  }
  if (config.freeze_backbone) built.model->freeze_backbone();
  return built;
}

DeepLabV3 build_architecture(const ModelConfig& config) {
  ModelConfig architecture = config;
  architecture.weights.clear();
  architecture.backbone_weights.clear();
  return build_model(architecture).model;
}

std::vector<std::string> describe(const BuiltModel& built, const ModelConfig& config) {
  std::vector<std::string> lines;
  lines.push_back(detail::str_cat("model: DeepLabV3-", config.backbone, ", ", config.num_classes, " classes",
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
  if (!config.weights.empty()) report(built.weights_report, config.weights);
  if (!config.backbone_weights.empty()) report(built.backbone_report, config.backbone_weights);
  if (config.weights.empty() && config.backbone_weights.empty()) {
    lines.push_back("model: random initialization (no --weights or --backbone-weights)");
  }
  return lines;
}

}  // namespace petseg::model
