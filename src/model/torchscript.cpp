// Tracing the C++ module into TorchScript with shared parameters: a script module tree mirroring the C++ one
// holds the same tensors, and the tracer (given that tree as `self`) records every use of them as an attribute
// read, which is what makes the traced graph a method of the module rather than a graph of constants.
#include "model/torchscript.h"

#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cstring>

#include "core/check.h"
#include "core/fs.h"

namespace petseg::model {
namespace {

// "petseg::model::DeepLabV3Impl" -> "DeepLabV3", "torch::nn::Conv2dImpl" -> "Conv2d".
std::string script_type_name(const torch::nn::Module& m) {
  std::string type = m.name();
  for (const char* strip : {"torch::nn::", "petseg::model::"}) {
    if (type.rfind(strip, 0) == 0) type = type.substr(std::strlen(strip));
  }
  if (type.size() > 4 && type.compare(type.size() - 4, 4, "Impl") == 0) type.resize(type.size() - 4);
  return type;
}

torch::jit::Module mirror(const torch::nn::Module& m, const std::shared_ptr<torch::jit::CompilationUnit>& cu) {
  const std::string type_name = script_type_name(m);
  torch::jit::Module sm(c10::QualifiedName("__torch__.petseg." + type_name), cu, /*shouldMangle=*/true);
  for (const auto& p : m.named_parameters(/*recurse=*/false)) sm.register_parameter(p.key(), p.value(), false);
  for (const auto& b : m.named_buffers(/*recurse=*/false)) sm.register_buffer(b.key(), b.value());
  sm.register_attribute("training", c10::BoolType::get(), m.is_training());
  for (const auto& c : m.named_children()) sm.register_module(c.key(), mirror(*c.value(), cu));
  return sm;
}

}  // namespace

torch::jit::Module trace_model(SegmentationModelImpl& model, const at::Tensor& example) {
  PETSEG_CHECK(example.dim() == 4 && example.size(1) == 3, "trace_model needs an [N,3,H,W] example");
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module module = mirror(model, cu);
  auto fn = [&model](torch::jit::Stack inputs) -> torch::jit::Stack {
    const SegmentationOutput y = model.forward(inputs.at(0).toTensor());
    c10::Dict<std::string, at::Tensor> out;
    out.insert("out", y.out);
    if (y.aux.defined()) out.insert("aux", y.aux);
    return {c10::IValue(out)};
  };
  // Tensors the tracer meets that are not the module's (none in this model) would be baked in as constants.
  auto traced = torch::jit::tracer::trace({example}, fn, [](const torch::autograd::Variable&) { return ""; },
                                          /*strict=*/false, /*force_outplace=*/false, &module, {"x"});
  auto graph = traced.first->graph;
  torch::jit::Function* forward = cu->create_function(c10::QualifiedName(*module.type()->name(), "forward"), graph);
  module.type()->addMethod(forward);
  return module;
}

SegmentationOutput run_scripted(torch::jit::Module& module, const at::Tensor& x) {
  const c10::IValue result = module.forward({x});
  SegmentationOutput y;
  if (result.isTensor()) {
    y.out = result.toTensor();
    return y;
  }
  PETSEG_CHECK(result.isGenericDict(), "a TorchScript segmentation model must return a tensor or a dict with \"out\"");
  const auto dict = result.toGenericDict();
  PETSEG_CHECK(dict.contains("out"), "the TorchScript model's output dict has no \"out\"");
  y.out = dict.at("out").toTensor();
  if (dict.contains("aux")) y.aux = dict.at("aux").toTensor();
  return y;
}

torch::jit::Module load_scripted(const std::filesystem::path& path) {
  PETSEG_CHECK(std::filesystem::exists(path), "TorchScript file ", path.string(), " does not exist");
  try {
    return torch::jit::load(path.string());
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    PETSEG_FAIL(path.string(), ": not a TorchScript file (", what.substr(0, what.find('\n')), ")");
  }
}

torch::jit::Module freeze_for_inference(const torch::jit::Module& traced) {
  torch::jit::Module m = traced.clone();
  m.eval();
  return torch::jit::freeze(m);
}

torch::jit::Module optimize_for_inference(const torch::jit::Module& traced) {
  torch::jit::Module frozen = freeze_for_inference(traced);
  return torch::jit::optimize_for_inference(frozen);
}

void export_torchscript(SegmentationModelImpl& model, const std::filesystem::path& path, const ExportOptions& options) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const at::Tensor example = at::zeros({1, 3, options.image_size, options.image_size});
  torch::jit::Module traced = trace_model(model, example);
  // optimize_for_inference's prepacked (MKLDNN) weights cannot be serialized; freezing can. Loaders run
  // torch.jit.optimize_for_inference themselves.
  if (options.optimize) traced = freeze_for_inference(traced);
  write_file_atomic_via(path, [&](const std::filesystem::path& tmp) { traced.save(tmp.string()); });
  model.train(was_training);
}

}  // namespace petseg::model
