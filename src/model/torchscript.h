// TorchScript from the one C++ model definition: the C++ module is traced (libtorch's JIT tracer) into a script
// module whose parameters and buffers ARE the C++ module's tensors, so training through it updates the model and
// an exported file carries torchvision's state_dict names. Inference modules are frozen and optimized.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <filesystem>

#include "model/segmentation.h"

namespace petseg::model {

// Traces `model` (any segmentation model: a DeepLabV3, FCN, LRASPP, or a SegmentationModel's *model) in its current
// mode (train or eval) on `example` ([N,3,H,W]); the result runs at any size and returns {"out": ..., "aux": ...}
// like torchvision's models ("aux" only where the model has an aux head).
torch::jit::Module trace_model(SegmentationModelImpl& model, const at::Tensor& example);
// Runs a traced (or Python-scripted torchvision) module and unpacks its output dict.
SegmentationOutput run_scripted(torch::jit::Module& module, const at::Tensor& x);
// Eval mode, frozen: weights folded into constants, BatchNorm into convolutions. Serializable.
torch::jit::Module freeze_for_inference(const torch::jit::Module& traced);
// Frozen, then optimized for inference on this machine (MKLDNN layouts and fusions): for running, not saving.
torch::jit::Module optimize_for_inference(const torch::jit::Module& traced);

// Loads a TorchScript file: one petseg exported, or torch.jit.script(torchvision.models.segmentation...(...)).
torch::jit::Module load_scripted(const std::filesystem::path& path);

struct ExportOptions {
  int image_size = 520;   // the example input's size; the module still accepts any size
  bool optimize = false;  // freeze for inference (the file can then only run inference)
};
// Writes a TorchScript file that Python's torch.jit.load (and libtorch's torch::jit::load) runs.
void export_torchscript(SegmentationModelImpl& model, const std::filesystem::path& path, const ExportOptions& options);

}  // namespace petseg::model
