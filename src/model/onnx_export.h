// ONNX export from C++, no Python: the graph is the model's own forward run on symbolic values (model/graph_ops.h),
// so it cannot drift from what `forward` computes; one emitter per layer kind, shared by every model; BatchNorm folded
// into the convolutions (model/fold.h); written with Debian's ONNX library and checked by its checker and shape
// inference before the file is written (model/onnx_proto.h).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/onnx_proto.h"
#include "model/segmentation.h"

namespace petseg::model {

struct OnnxExportOptions {
  int64_t opset = 17;  // kOnnxMinOpset .. onnx_max_opset()
  // Empty: input [N,3,H,W] with N, H and W dynamic; else {N, H, W}, fixed.
  std::vector<int64_t> static_shape;
  bool aux = false;            // also output the aux head's logits, "aux" (the model must have the aux head)
  bool fp16 = false;           // float16 weights and compute; the input and outputs stay float32 (Cast nodes)
  bool force = false;          // overwrite an existing file
  bool fold_batchnorm = true;  // false keeps BatchNormalization nodes
  // metadata_props: petseg.model, petseg.classes (comma-joined; empty: the class indices), petseg.mean and
  // petseg.std (the input normalization, per RGB channel), petseg.image_size (the size the model was trained at)
  std::string model_name;
  std::vector<std::string> class_names;
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};
  int64_t image_size = 520;
};

// Writes `model`'s eval-mode function as an ONNX file at `path` (atomically; the model itself is not changed): input
// "input" [N,3,H,W] float32, output "out" [N,C,H,W] (logits at the input's size) and "aux" when asked. Errors name the
// option or the module: an opset this build cannot write, an existing file without `force`, a folder that cannot take
// the file (checked before the graph is built), a layer kind without an emitter. read_onnx_file reads it back.
void export_onnx(SegmentationModelImpl& model, const std::filesystem::path& path, const OnnxExportOptions& options);

}  // namespace petseg::model
