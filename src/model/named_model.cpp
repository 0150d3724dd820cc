// Weight names resolved through torch.hub's cache, then the model built and loaded.
#include "model/named_model.h"

#include "core/log.h"
#include "fetch/weights_cache.h"
#include "model/registry.h"

namespace petseg::model {

BuiltSegmentationModel build_named_model(ModelConfig mc, const std::string& mirror) {
  const ModelInfo& info = model_info(mc);
  const BackboneInfo& backbone = find_backbone(mc.backbone);
  mc.weights =
      fetch::resolve_weights(mc.weights.string(), fetch::WeightsRole::kModel, {info.name, info.coco_weights}, mirror);
  mc.backbone_weights = fetch::resolve_weights(mc.backbone_weights.string(), fetch::WeightsRole::kBackbone,
                                               {backbone.name, backbone.imagenet_weights}, mirror);
  BuiltSegmentationModel built = build_segmentation_model(mc);
  for (const auto& line : describe(built, mc)) log_info(line);
  return built;
}

}  // namespace petseg::model
