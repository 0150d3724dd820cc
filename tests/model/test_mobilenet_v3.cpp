// model/mobilenet_v3: the dilated MobileNetV3-Large backbone as torchvision's segmentation builders use it, its
// structure (names, dilation, squeeze channels, BatchNorm constants) and its ImageNet weights' mapping, checked
// against torchvision's mobilenet_v3_large(dilated=True).features.
#include "model/mobilenet_v3.h"

#include <ATen/ops/abs.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <map>
#include <set>
#include <sstream>

#include "core/device.h"
#include "model/factory.h"
#include "test_util.h"

namespace petseg::model {
namespace {

std::shared_ptr<torch::nn::Module> module_at(torch::nn::Module& root, const std::string& name) {
  return root.named_modules()[name];
}

TEST(MobileNetV3, MakeDivisibleIsTorchvisions) {
  // The squeeze channels of MobileNetV3-Large's SE blocks: _make_divisible(expanded // 4, 8).
  EXPECT_EQ(make_divisible(72 / 4), 24);  // 16 would be more than 10% below 18
  EXPECT_EQ(make_divisible(120 / 4), 32);
  EXPECT_EQ(make_divisible(480 / 4), 120);
  EXPECT_EQ(make_divisible(672 / 4), 168);
  EXPECT_EQ(make_divisible(960 / 4), 240);
  EXPECT_EQ(make_divisible(3), 8);
}

TEST(MobileNetV3, StructureIsTorchvisionsDilatedLarge) {
  MobileNetV3 m;
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) names.insert(p.key());
  for (const auto& b : m->named_buffers()) names.insert(b.key());
  for (const char* expected :
       {"0.0.weight", "0.1.running_var", "1.block.0.0.weight", "1.block.1.1.bias", "4.block.2.fc1.weight",
        "4.block.2.fc1.bias", "4.block.2.fc2.weight", "4.block.3.0.weight", "13.block.1.0.weight",
        "15.block.3.1.num_batches_tracked", "16.0.weight", "16.1.bias"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  EXPECT_EQ(names.count("1.block.2.0.weight"), 0u) << "the first block has no expansion";
  EXPECT_EQ(names.count("17.0.weight"), 0u);
  auto conv = [&](const std::string& name) { return module_at(*m, name)->as<torch::nn::Conv2d>()->options; };
  EXPECT_EQ(conv("4.block.2.fc1").out_channels(), 24);
  EXPECT_EQ(conv("16.0").out_channels(), 960);
  // C4 (features.13) is dilated instead of strided; its depthwise 5x5 pads by 4; C3 (features.7) still strides.
  EXPECT_EQ(conv("13.block.1.0").stride()->at(0), 1);
  EXPECT_EQ(conv("13.block.1.0").dilation()->at(0), 2);
  EXPECT_EQ(conv("13.block.1.0").groups(), 672);
  EXPECT_EQ(std::get<torch::ExpandingArray<2>>(conv("13.block.1.0").padding())->at(0), 4);
  EXPECT_EQ(conv("14.block.1.0").dilation()->at(0), 2);
  EXPECT_EQ(conv("7.block.1.0").stride()->at(0), 2);
  std::ostringstream bn;
  module_at(*m, "5.block.1.1")->pretty_print(bn);
  EXPECT_EQ(bn.str(), "petseg::BatchNorm2d(120, eps=0.001, momentum=0.01)");
  torch::NoGradGuard no_grad;
  m->eval();
  const BackboneFeatures f = m->forward(at::randn({1, 3, 64, 96}));
  EXPECT_EQ(f.aux.sizes(), (std::vector<int64_t>{1, 40, 8, 12}));
  EXPECT_EQ(f.out.sizes(), (std::vector<int64_t>{1, 960, 4, 6}));
}

// An ImageNet MobileNetV3-Large file (features.* + classifier.*) fills the segmentation model's backbone; its
// features match torchvision's dilated features run on the same weights.
TEST(MobileNetV3, BackboneWeightsFromAnImageNetClassifier) {
  PETSEG_REQUIRE_PYTHON();
  configure_threads(0);
  testing::TempDir dir;
  testing::run_python(R"(
import torch, torchvision
from collections import OrderedDict
torch.manual_seed(2)
m = torchvision.models.mobilenet_v3_large(weights=None, dilated=True)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
        elif isinstance(mod, torch.nn.Conv2d) and mod.bias is not None:
            mod.bias.uniform_(-0.2, 0.2)
torch.save(m.state_dict(), ')" +
                      (dir / "mobilenet.pth").string() + R"(')
m.eval()
x = torch.randn(2, 3, 75, 61)
with torch.no_grad():
    h = x
    for i, layer in enumerate(m.features):
        h = layer(h)
        if i == 4:
            aux = h
torch.save(OrderedDict(x=x, aux=aux, out=h), ')" +
                      (dir / "io.pth").string() + R"(')
)");
  ModelConfig config;
  set_model_name(config, "deeplabv3_mobilenet_v3_large");
  config.backbone_weights = dir / "mobilenet.pth";
  BuiltSegmentationModel built = build_segmentation_model(config);
  EXPECT_EQ(built.backbone_report.ignored, (std::vector<std::string>{"classifier.0.weight", "classifier.0.bias",
                                                                     "classifier.3.weight", "classifier.3.bias"}));
  EXPECT_EQ(built.backbone_report.loaded, 308);  // every tensor of features
  std::map<std::string, at::Tensor> io;
  for (const auto& [k, v] : read_state_dict(dir / "io.pth")) io[k] = v;
  built.model->eval();
  torch::NoGradGuard no_grad;
  auto* backbone = built.model->named_children()["backbone"]->as<BackboneImpl>();
  const BackboneFeatures f = backbone->forward(io.at("x"));
  ASSERT_EQ(f.aux.sizes(), io.at("aux").sizes());
  ASSERT_EQ(f.out.sizes(), io.at("out").sizes());
  const double aux_scale = std::max(1.0, io.at("aux").abs().max().item<double>());
  const double out_scale = std::max(1.0, io.at("out").abs().max().item<double>());
  const double aux_diff = (f.aux - io.at("aux")).abs().max().item<double>() / aux_scale;
  const double out_diff = (f.out - io.at("out")).abs().max().item<double>() / out_scale;
  EXPECT_LT(aux_diff, 1e-5);
  EXPECT_LT(out_diff, 1e-5);
  std::cout << "[ parity ] mobilenet_v3_large features: aux " << aux_diff << " out " << out_diff
            << " (relative max abs differences)\n";
}

}  // namespace
}  // namespace petseg::model
