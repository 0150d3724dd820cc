// model/deeplabv3 + factory: parity with torchvision's deeplabv3_resnet101/50 from the same weight file, and
// transfer learning to 3 classes.
#include "model/factory.h"

#include <ATen/ops/abs.h>
#include <ATen/ops/equal.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/check.h"
#include "core/device.h"
#include "core/process.h"
#include "deeplab_reference.h"
#include "test_util.h"

namespace petseg::model {
namespace {

namespace fs = std::filesystem;

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

void expect_parity(const std::string& backbone, bool legacy) {
  configure_threads(0);
  testing::TempDir dir;
  const testing::DeepLabReference ref = testing::deeplab_reference(dir, backbone, legacy);
  ModelConfig config;
  config.backbone = backbone;
  config.num_classes = 21;
  config.aux_loss = true;
  config.weights = ref.weights;
  BuiltSegmentationModel built = build_segmentation_model(config);
  EXPECT_TRUE(built.weights_report.skipped.empty());
  EXPECT_TRUE(built.weights_report.ignored.empty());
  built.model->eval();
  torch::NoGradGuard no_grad;
  const SegmentationOutput y = built.model->forward(ref.input);
  ASSERT_EQ(y.out.sizes(), ref.out.sizes());
  ASSERT_EQ(y.aux.sizes(), ref.aux.sizes());
  EXPECT_LT(max_diff(y.out, ref.out), 1e-4) << backbone;
  EXPECT_LT(max_diff(y.aux, ref.aux), 1e-4) << backbone;
}

TEST(DeepLabV3Parity, ResNet101MatchesTorchvision) {
  PETSEG_REQUIRE_PYTHON();
  expect_parity("resnet101", /*legacy=*/false);
}

TEST(DeepLabV3Parity, ResNet50MatchesTorchvisionFromALegacyFile) {
  PETSEG_REQUIRE_PYTHON();
  expect_parity("resnet50", /*legacy=*/true);
}

TEST(DeepLabV3Parity, ThreeClassesAfterLoadingA21ClassFile) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  const testing::DeepLabReference ref = testing::deeplab_reference(dir, "resnet50", false);
  ModelConfig config;
  config.backbone = "resnet50";
  config.num_classes = 3;
  config.aux_loss = true;
  config.weights = ref.weights;
  BuiltSegmentationModel built = build_segmentation_model(config);
  std::set<std::string> skipped;
  for (const auto& s : built.weights_report.skipped) skipped.insert(s.substr(0, s.find(':')));
  EXPECT_EQ(skipped, (std::set<std::string>{"classifier.4.weight", "classifier.4.bias", "aux_classifier.4.weight",
                                            "aux_classifier.4.bias"}));
  // Everything else came from the file.
  std::map<std::string, at::Tensor> file;
  for (const auto& [k, v] : read_state_dict(ref.weights)) file[k] = v;
  for (const auto& p : built.model->named_parameters()) {
    if (skipped.count(p.key())) continue;
    EXPECT_TRUE(at::equal(p.value(), file.at(p.key()))) << p.key();
  }
  built.model->eval();
  torch::NoGradGuard no_grad;
  const SegmentationOutput y = built.model->forward(ref.input);
  EXPECT_EQ(y.out.sizes(), (std::vector<int64_t>{2, 3, 67, 83}));
  // Without --aux-loss the file's aux head is ignored, and said so.
  config.aux_loss = false;
  BuiltSegmentationModel no_aux = build_segmentation_model(config);
  EXPECT_FALSE(no_aux.model->has_aux());
  EXPECT_FALSE(no_aux.weights_report.ignored.empty());
  const auto lines = describe(no_aux, config);
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.find("ignored") != std::string::npos; }));
}

// An ImageNet ResNet checkpoint (with its fc layer) fills the backbone only; features match torchvision's dilated
// ResNet run on the same weights.
TEST(DeepLabV3Parity, BackboneWeightsFromAnImageNetResNet) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  testing::run_python(R"(
import torch, torchvision
from collections import OrderedDict
torch.manual_seed(1)
r = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
with torch.no_grad():
    for m in r.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1); m.running_var.uniform_(0.5, 1.5)
torch.save(r.state_dict(), ')" +
                      (dir / "resnet50.pth").string() + R"(')
r.eval()
x = torch.randn(1, 3, 64, 64)
with torch.no_grad():
    h = r.maxpool(r.relu(r.bn1(r.conv1(x))))
    layer4 = r.layer4(r.layer3(r.layer2(r.layer1(h))))
torch.save(OrderedDict(x=x, layer4=layer4), ')" +
                      (dir / "io.pth").string() + R"(')
)");
  ModelConfig config;
  config.backbone = "resnet50";
  config.backbone_weights = dir / "resnet50.pth";
  BuiltSegmentationModel built = build_segmentation_model(config);
  EXPECT_EQ(built.backbone_report.ignored, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  std::map<std::string, at::Tensor> io;
  for (const auto& [k, v] : read_state_dict(dir / "io.pth")) io[k] = v;
  built.model->eval();
  torch::NoGradGuard no_grad;
  // Relative to the features' scale: an unnormalised random ResNet's layer4 reaches the hundreds, and the
  // summation order (thread count) moves the last float bits.
  const at::Tensor& expected = io.at("layer4");
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LT(max_diff(built.model->as<DeepLabV3Impl>()->backbone->forward(io.at("x")).out, expected) / scale, 1e-5) << "scale " << scale;
  // A DeepLabV3 file given as backbone weights is a clear error naming a key.
  config.backbone_weights = dir / "io.pth";
  EXPECT_THROW(build_segmentation_model(config), Error);
}

TEST(DeepLabV3, StateDictNamesAreTorchvisions) {
  DeepLabV3Options o;
  o.backbone = "resnet50";
  o.aux_loss = true;
  DeepLabV3 model(o);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const auto& b : model->named_buffers()) names.insert(b.key());
  for (const char* expected :
       {"backbone.conv1.weight", "backbone.bn1.running_var", "backbone.layer1.0.downsample.0.weight",
        "backbone.layer3.5.conv2.weight", "backbone.layer4.2.bn3.num_batches_tracked", "classifier.0.convs.0.0.weight",
        "classifier.0.convs.3.1.bias", "classifier.0.convs.4.1.weight", "classifier.0.convs.4.2.running_mean",
        "classifier.0.project.0.weight", "classifier.1.weight", "classifier.2.weight", "classifier.4.weight",
        "classifier.4.bias", "aux_classifier.0.weight", "aux_classifier.1.running_mean", "aux_classifier.4.bias"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  EXPECT_EQ(names.count("backbone.fc.weight"), 0u);
  // Dilation as torchvision: the first block of a dilated stage keeps the previous dilation.
  auto conv2 = [&](const std::string& layer, int block) {
    return model->backbone->named_modules()[layer + "." + std::to_string(block) + ".conv2"]->as<torch::nn::Conv2d>();
  };
  EXPECT_EQ(conv2("layer3", 0)->options.dilation()->at(0), 1);
  EXPECT_EQ(conv2("layer3", 1)->options.dilation()->at(0), 2);
  EXPECT_EQ(conv2("layer4", 0)->options.dilation()->at(0), 2);
  EXPECT_EQ(conv2("layer4", 1)->options.dilation()->at(0), 4);
}

TEST(DeepLabV3, FrozenBackboneStaysInEvalModeAndGetsNoGradients) {
  DeepLabV3Options o;
  o.backbone = "resnet50";
  o.num_classes = 3;
  DeepLabV3 model(o);
  model->freeze_backbone();
  model->train();
  EXPECT_TRUE(model->is_training());
  EXPECT_FALSE(model->backbone->is_training());
  EXPECT_TRUE(model->classifier->is_training());
  const auto y = model->forward(torch::randn({2, 3, 64, 64}));
  y.out.mean().backward();
  for (const auto& p : model->backbone->parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_TRUE(model->classifier->parameters().front().grad().defined());
}

TEST(DeepLabV3, UnknownBackboneListsTheValidOnes) {
  DeepLabV3Options o;
  o.backbone = "resnet100";
  try {
    DeepLabV3 model(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown backbone \"resnet100\"; valid: resnet50, resnet101, mobilenet_v3_large");
  }
}

}  // namespace
}  // namespace petseg::model
