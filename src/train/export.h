// `petseg export`: a model built from the registry (torchvision's weights by name or file) or a trained run's
// checkpoint, written as TorchScript, as a torchvision state dict, or as ONNX (model/onnx_export.h).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/choices.h"
#include "model/factory.h"

namespace petseg::train {

inline const Choices kExportFormats = {"torchscript", "state-dict", "onnx"};  // --format

struct ExportRequest {
  model::ModelConfig model;  // the model to build when there is no checkpoint
  std::string mirror;        // where named weights are downloaded from
  // A run's checkpoint instead: its model and weights, and its classes and image size for the ONNX metadata.
  std::filesystem::path checkpoint;
  std::filesystem::path out;
  std::string format = "torchscript";
  int image_size = 520;   // TorchScript's example input; ONNX's petseg.image_size (a checkpoint's own size wins)
  bool optimize = false;  // TorchScript: frozen for inference
  bool force = false;     // overwrite an existing `out` (else refused, for every format)
  // ONNX (model::OnnxExportOptions)
  int opset = 17;
  std::vector<int> static_shape;  // N,H,W; empty: dynamic
  bool aux = false;               // the aux head's output too (a model built here gets the head)
  bool fp16 = false;
};

// Writes the file; `out` is checked before the model is built or loaded. Logs what was written.
void run_export(const ExportRequest& request);

// The class names a checkpoint's run trained on (its last epoch's record); empty when it holds none yet.
std::vector<std::string> checkpoint_class_names(const std::filesystem::path& checkpoint);

}  // namespace petseg::train
