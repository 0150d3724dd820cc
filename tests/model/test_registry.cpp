// model/registry + factory: torchvision's names and weight files (checked against torchvision's own weights enums),
// --model parsing and its errors, the SegmentationModel handle, and weights by name from a torch.hub cache that
// the test fills itself (fetch/weights_cache; no network).
#include "model/registry.h"

#include <ATen/ops/equal.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <sstream>

#include "core/check.h"
#include "fetch/weights_cache.h"
#include "model/factory.h"
#include "model/lraspp.h"
#include "model/mobilenet_v3.h"
#include "test_util.h"

namespace petseg::model {
namespace {

namespace fs = std::filesystem;

using testing::error_of;

TEST(Registry, NamesAndWeightFilesAreTorchvisions) {
  PETSEG_REQUIRE_PYTHON();
  // For each model: torchvision's DEFAULT weights, and the ImageNet file its builder's weights_backbone default names.
  const std::string out = testing::run_python(R"(
import inspect, torchvision
from torchvision.models import segmentation, get_model_weights, list_models
names = set(list_models(module=segmentation))
for name in [)" + [] {
    std::string list;
    for (const auto& m : registered_models()) list += "'" + m.name + "', ";
    return list;
  }() + R"(]:
    assert name in names, name
    backbone = inspect.signature(getattr(segmentation, name)).parameters['weights_backbone'].default
    print(name, get_model_weights(name).DEFAULT.url.split('/')[-1], backbone.url.split('/')[-1])
)");
  std::ostringstream expected;
  for (const auto& m : registered_models()) {
    expected << m.name << " " << m.coco_weights << " " << find_backbone(m.backbone).imagenet_weights << "\n";
  }
  EXPECT_EQ(out, expected.str());
}

TEST(Registry, ModelNamesAreArchAndBackbone) {
  EXPECT_EQ(kModelChoices, (Choices{"deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
                                    "fcn_resnet50", "fcn_resnet101", "lraspp_mobilenet_v3_large"}));
  EXPECT_EQ(kBackboneChoices, (Choices{"resnet50", "resnet101", "mobilenet_v3_large"}));
  ModelConfig config;
  EXPECT_EQ(model_name(config), "deeplabv3_resnet101") << "a config without arch is the original DeepLabV3";
  for (const auto& m : registered_models()) {
    set_model_name(config, m.name);
    EXPECT_EQ(model_name(config), m.name);
    EXPECT_EQ(config.arch + "_" + config.backbone, m.name);
  }
  set_model_name(config, "lraspp_mobilenet_v3_large");
  EXPECT_EQ(config.arch, "lraspp");
  EXPECT_EQ(config.backbone, "mobilenet_v3_large");
  EXPECT_EQ(error_of([&] { set_model_name(config, "unet"); }),
            "unknown --model \"unet\"; valid: deeplabv3_resnet50, deeplabv3_resnet101, deeplabv3_mobilenet_v3_large, "
            "fcn_resnet50, fcn_resnet101, lraspp_mobilenet_v3_large");
}

TEST(Registry, CombinationsTorchvisionLacksAreClearErrors) {
  ModelConfig config;
  config.backbone = "resnet100";
  EXPECT_EQ(error_of([&] { build_segmentation_architecture(config); }),
            "unknown backbone \"resnet100\"; valid: resnet50, resnet101, mobilenet_v3_large");
  config.arch = "fcn";
  config.backbone = "mobilenet_v3_large";
  EXPECT_EQ(error_of([&] {
              build_segmentation_architecture(config);
            }).rfind("unknown model \"fcn_mobilenet_v3_large\"; valid: ", 0),
            0u);
  set_model_name(config, "lraspp_mobilenet_v3_large");
  config.aux_loss = true;
  EXPECT_NE(error_of([&] { build_segmentation_architecture(config); }).find("no aux head"), std::string::npos);
}

TEST(Registry, DeepLabV3IsASegmentationModel) {
  DeepLabV3 deeplab(DeepLabV3Options{"mobilenet_v3_large", 3, true});
  SegmentationModel model = deeplab;  // the same module, shared
  EXPECT_EQ(model.get(), deeplab.get());
  model->freeze_backbone();
  EXPECT_TRUE(deeplab->backbone_frozen());
  EXPECT_TRUE(model->has_aux());
  EXPECT_EQ(model->num_classes(), 3);
  EXPECT_NE(deeplab->backbone->as<MobileNetV3Impl>(), nullptr);
  EXPECT_EQ(deeplab->options().backbone, "mobilenet_v3_large");
  ModelConfig config;
  set_model_name(config, "deeplabv3_mobilenet_v3_large");
  EXPECT_NE(build_segmentation_architecture(config)->as<DeepLabV3Impl>()->backbone->as<MobileNetV3Impl>(), nullptr)
      << "the registry builds every DeepLabV3";
  set_model_name(config, "lraspp_mobilenet_v3_large");
  SegmentationModel lraspp = build_segmentation_architecture(config);
  EXPECT_NE(lraspp->as<LRASPPImpl>(), nullptr);
  EXPECT_FALSE(lraspp->has_aux());
}

// TORCH_HOME pointed at a folder of the test's own for its lifetime.
class ScopedTorchHome {
 public:
  explicit ScopedTorchHome(const fs::path& dir) {
    if (const char* old = std::getenv("TORCH_HOME")) old_ = old;
    ::setenv("TORCH_HOME", dir.c_str(), 1);
  }
  ~ScopedTorchHome() { old_.empty() ? ::unsetenv("TORCH_HOME") : ::setenv("TORCH_HOME", old_.c_str(), 1); }

 private:
  std::string old_;
};

// "coco" and "imagenet" resolve to torchvision's file names in torch.hub's cache, where files petseg wrote in
// torchvision's layouts (a 21-class LR-ASPP; an ImageNet MobileNetV3 with features.* and classifier.*) load.
TEST(WeightsByName, FoundInTorchHubsCache) {
  testing::TempDir dir;
  ScopedTorchHome home(dir.path());
  const fs::path cache = dir / "hub" / "checkpoints";
  fs::create_directories(cache);
  const ModelInfo& info = find_model("lraspp_mobilenet_v3_large");
  const BackboneInfo& backbone = find_backbone(info.backbone);
  LRASPP coco(LRASPPOptions{"mobilenet_v3_large", 21});
  save_state_dict(module_state_dict(*coco), cache / info.coco_weights);
  StateDict imagenet;
  for (const auto& [k, v] : module_state_dict(*coco->backbone)) imagenet.emplace_back("features." + k, v);
  imagenet.emplace_back("classifier.0.weight", at::zeros({1280, 960}));
  imagenet.emplace_back("classifier.3.bias", at::zeros({1000}));
  save_state_dict(imagenet, cache / backbone.imagenet_weights);

  ModelConfig config;
  set_model_name(config, info.name);
  config.weights = fetch::resolve_weights("coco", fetch::WeightsRole::kModel, {info.name, info.coco_weights});
  EXPECT_EQ(config.weights, cache / "lraspp_mobilenet_v3_large-d234d4ea.pth");
  EXPECT_EQ(fetch::resolve_weights(info.coco_weights, fetch::WeightsRole::kModel, {info.name, ""}), config.weights);
  const BuiltSegmentationModel built = build_segmentation_model(config);
  EXPECT_EQ(built.weights_report.skipped.size(), 4u) << "low_classifier and high_classifier, for 3 classes";
  for (const auto& p : built.model->named_parameters()) {
    const bool replaced = p.key().rfind("classifier.low_", 0) == 0 || p.key().rfind("classifier.high_", 0) == 0;
    if (!replaced) {
      EXPECT_TRUE(at::equal(p.value(), coco->named_parameters()[p.key()])) << p.key();
    }
  }
  config.weights.clear();
  config.backbone_weights =
      fetch::resolve_weights("imagenet", fetch::WeightsRole::kBackbone, {backbone.name, backbone.imagenet_weights});
  EXPECT_EQ(config.backbone_weights, cache / "mobilenet_v3_large-8738ca79.pth");
  const BuiltSegmentationModel from_imagenet = build_segmentation_model(config);
  EXPECT_EQ(from_imagenet.backbone_report.ignored,
            (std::vector<std::string>{"classifier.0.weight", "classifier.3.bias"}));
  EXPECT_TRUE(at::equal(from_imagenet.model->named_parameters()["backbone.16.1.weight"],
                        coco->named_parameters()["backbone.16.1.weight"]));
  EXPECT_NE(error_of([&] {
              fetch::resolve_weights("coco", fetch::WeightsRole::kModel, fetch::NamedWeights{"unet", ""});
            }).find("torchvision has no coco weights for unet"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] {
        fetch::resolve_weights("nope.pth", fetch::WeightsRole::kBackbone, {backbone.name, backbone.imagenet_weights});
      }).find("mobilenet_v3_large-8738ca79.pth"),
      std::string::npos)
      << "the error names this backbone's file as the example";
}

}  // namespace
}  // namespace petseg::model
