// model/torchscript: the traced module shares the C++ model's tensors, runs at any size, trains (gradients reach
// the C++ parameters), freezes for inference, and Python's torch.jit.load runs the exported file of every model.
#include "model/torchscript.h"

#include <ATen/ops/randn.h>
#include <gtest/gtest.h>

#include <torch/csrc/autograd/grad_mode.h>
#include <map>

#include "core/check.h"
#include "core/device.h"
#include "model/factory.h"
#include "model/resnet.h"
#include "model/weights.h"
#include "test_util.h"

namespace petseg::model {
namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

DeepLabV3 small_model(bool aux = true) {
  DeepLabV3Options o;
  o.backbone = "resnet50";
  o.num_classes = 3;
  o.aux_loss = aux;
  return DeepLabV3(o);
}

TEST(TorchScript, TracedModuleMatchesEagerAtAnySize) {
  configure_threads(0);
  DeepLabV3 model = small_model();
  model->eval();
  torch::NoGradGuard no_grad;
  torch::jit::Module traced = trace_model(*model, at::randn({1, 3, 64, 64}));
  for (auto [h, w] : {std::pair{64, 64}, std::pair{57, 91}}) {
    const at::Tensor x = at::randn({2, 3, h, w});
    const SegmentationOutput eager = model->forward(x);
    const SegmentationOutput scripted = run_scripted(traced, x);
    ASSERT_EQ(scripted.out.sizes(), eager.out.sizes()) << h << "x" << w;
    EXPECT_LT(max_diff(scripted.out, eager.out), 1e-5);
    EXPECT_LT(max_diff(scripted.aux, eager.aux), 1e-5);
  }
}

TEST(TorchScript, SharesParametersAndTrainsThem) {
  DeepLabV3 model = small_model(/*aux=*/false);
  model->train();
  torch::jit::Module traced = trace_model(*model, at::randn({2, 3, 48, 48}));
  // Same tensors, not copies.
  const at::Tensor w = model->classifier->named_parameters()["4.weight"];
  EXPECT_TRUE(traced.attr("classifier").toModule().attr("4").toModule().attr("weight").toTensor().is_same(w));
  const at::Tensor before = w.detach().clone();
  const SegmentationOutput y = run_scripted(traced, at::randn({2, 3, 40, 56}));
  y.out.square().mean().backward();
  int with_grad = 0, params = 0;
  for (const auto& p : model->parameters()) {
    ++params;
    with_grad += p.grad().defined() && p.grad().abs().sum().item<double>() > 0;
  }
  EXPECT_EQ(with_grad, params) << "every parameter of the C++ model gets a gradient through TorchScript";
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.sub_(0.1 * p.grad());
  }
  EXPECT_GT(max_diff(w, before), 0.0);
  // BatchNorm statistics are updated in place, as in eager training.
  const at::Tensor rm = model->backbone->as<ResNetImpl>()->bn1->running_mean;
  EXPECT_GT(rm.abs().sum().item<double>(), 0.0);
}

TEST(TorchScript, FrozenInferenceModuleMatchesEager) {
  DeepLabV3 model = small_model();
  model->eval();
  torch::NoGradGuard no_grad;
  torch::jit::Module fast = optimize_for_inference(trace_model(*model, at::randn({1, 3, 64, 64})));
  const at::Tensor x = at::randn({1, 3, 72, 64});
  EXPECT_LT(max_diff(run_scripted(fast, x).out, model->forward(x).out), 1e-4);
}

TEST(TorchScript, PythonRunsTheExportedModule) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  DeepLabV3 model = small_model();
  model->eval();
  export_torchscript(*model, dir / "model.pt", {/*image_size=*/64, /*optimize=*/false});
  export_torchscript(*model, dir / "fast.pt", {/*image_size=*/64, /*optimize=*/true});
  const at::Tensor x = at::randn({1, 3, 80, 70});
  at::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(x).out;
  }
  save_state_dict({{"x", x}, {"out", expected}}, dir / "io.pth");
  const std::string out = testing::run_python(R"(
import torch
io = torch.load(')" + (dir / "io.pth").string() +
                                              R"(')
for name in ['model.pt', 'fast.pt']:
    m = torch.jit.load(')" + dir.path().string() +
                                              R"(/' + name)
    with torch.no_grad():
        y = m(io['x'])
    print(name, tuple(y['out'].shape), float((y['out'] - io['out']).abs().max()) < 1e-4)
sd = torch.jit.load(')" + (dir / "model.pt").string() +
                                              R"(').state_dict()
print('classifier.4.weight' in sd, 'backbone.layer4.2.conv3.weight' in sd)
)");
  EXPECT_EQ(out, "model.pt (1, 3, 80, 70) True\nfast.pt (1, 3, 80, 70) True\nTrue True\n");
}

// Every registered model exported (eval, 3 classes, the aux head where it has one): Python's torch.jit.load runs it
// to the C++ model's outputs, and its state_dict has exactly torchvision's keys for the same model.
TEST(TorchScript, PythonRunsTheExportOfEveryModel) {
  PETSEG_REQUIRE_PYTHON();
  configure_threads(0);
  testing::TempDir dir;
  const at::Tensor x = at::randn({1, 3, 80, 70});
  StateDict io = {{"x", x}};
  std::string expected;
  for (const auto& info : registered_models()) {
    SegmentationModel m = info.build(3, /*aux_loss=*/!info.aux_prefix.empty());
    m->eval();
    export_torchscript(*m, dir / (info.name + ".pt"), {/*image_size=*/64, /*optimize=*/false});
    torch::NoGradGuard no_grad;
    const SegmentationOutput y = m->forward(x);
    io.emplace_back(info.name + ".out", y.out);
    if (y.aux.defined()) io.emplace_back(info.name + ".aux", y.aux);
    expected += info.name + " True True\n";
  }
  save_state_dict(io, dir / "io.pth");
  const std::string out = testing::run_python(R"(
import torch, torchvision
io = torch.load(')" + (dir / "io.pth").string() + R"(')
for name in [k[:-len('.out')] for k in io if k.endswith('.out')]:
    m = torch.jit.load(')" + dir.path().string() + R"(/' + name + '.pt')
    with torch.no_grad():
        y = m(io['x'])
    close = all(float((y[k] - io[name + '.' + k]).abs().max()) < 1e-4 for k in ('out', 'aux') if name + '.' + k in io)
    close = close and set(y) == {k for k in ('out', 'aux') if name + '.' + k in io}
    kwargs = dict(weights=None, weights_backbone=None, num_classes=3)
    if not name.startswith('lraspp'):
        kwargs['aux_loss'] = True
    reference = getattr(torchvision.models.segmentation, name)(**kwargs)
    print(name, close, set(m.state_dict()) == set(reference.state_dict()))
)");
  EXPECT_EQ(out, expected);
}

TEST(TorchScript, RunsAModelScriptedInPython) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  testing::run_python(R"(
import torch, torchvision
from collections import OrderedDict
torch.manual_seed(0)
m = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=3).eval()
s = torch.jit.script(m)
s.save(')" + (dir / "scripted.pt").string() +
                      R"(')
x = torch.randn(1, 3, 64, 72)
with torch.no_grad():
    y = m(x)['out']
torch.save(OrderedDict(x=x, out=y), ')" +
                      (dir / "io.pth").string() + R"(')
)");
  torch::jit::Module m = load_scripted(dir / "scripted.pt");
  m.eval();
  std::map<std::string, at::Tensor> io;
  for (const auto& [k, v] : read_state_dict(dir / "io.pth")) io[k] = v;
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_diff(run_scripted(m, io.at("x")).out, io.at("out")), 1e-4);
  EXPECT_THROW(load_scripted(dir / "io.pth"), Error);
}

}  // namespace
}  // namespace petseg::model
