// The model as eval and predict run it (and bench model's inference cases may): BatchNorm folded into the
// convolutions, fp32 or bf16 weights, in-place activations, no aux head, no autograd state, eager (on the CPU with
// activations and residual sums fused into the convolutions) or TorchScript, and the memory format (contiguous or
// channels_last) that runs faster on this machine, measured, never assumed.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "core/choices.h"
#include "model/segmentation.h"

namespace torch::jit {
struct Module;
}

namespace petseg::model {

class FusedProgram;

// --precision's fixed words (auto is resolved by the caller) and --memory-format's.
inline const Choices kInferencePrecisionChoices = {"fp32", "bf16"};
inline const Choices kMemoryFormatChoices = {"auto", "contiguous", "channels-last"};
// "fp32" -> kFloat, "bf16" -> kBFloat16; anything else names `option` and the valid words.
at::ScalarType inference_dtype(const std::string& precision, const std::string& option = "--precision");

struct InferenceModelOptions {
  at::ScalarType dtype = at::kFloat;  // of the weights and activations: kFloat or kBFloat16
  // auto: both formats timed on the first input of each size class (then kept for that class; logged with -v);
  // contiguous; channels-last.
  std::string memory_format = "auto";
  bool torch_script = false;   // traced and frozen (on the CPU in fp32 also optimized for inference: oneDNN)
  bool fold_batchnorm = true;  // false only to compare with the unfolded model
  // Eager on the CPU: run the forward as a FusedProgram (model/fused_program.h: activations and residual sums fused
  // into oneDNN's convolutions). false only to compare with the plain eager forward.
  bool fuse = true;
};

class InferenceModel {
 public:
  // Takes `model` over: eval mode, BatchNorm folded, cast to options.dtype, moved to `device`, aux head skipped,
  // activations in place; traced and frozen with options.torch_script. The caller must not train it afterwards.
  InferenceModel(SegmentationModel model, const c10::Device& device, InferenceModelOptions options = {});
  ~InferenceModel();
  InferenceModel(InferenceModel&&) noexcept;
  InferenceModel& operator=(InferenceModel&&) noexcept;

  // [N,3,H,W] float32 ImageNet-normalized images (any device, any memory format) -> [N,C,H,W] float32 logits on
  // device(), the model's `out`. Runs under InferenceMode; the first input of a new size class under memory format
  // auto also times both formats (five more forwards, and device synchronisations on CUDA).
  at::Tensor forward(const at::Tensor& images);

  const c10::Device& device() const { return device_; }
  at::ScalarType dtype() const { return options_.dtype; }
  int64_t num_classes() const { return model_->num_classes(); }
  int folded_layers() const { return folded_; }
  // The fused program the eager CPU forward runs, or nullptr (TorchScript, CUDA, options.fuse off).
  const FusedProgram* program() const { return program_.get(); }
  // Whether inputs shaped as `images` run channels_last (timing them first under auto).
  bool channels_last_for(const at::Tensor& images);
  // "BatchNorm folded into 53 convolutions, bf16, eager, memory format timed per input size; 61 convolutions, 45
  // with their activation and 16 with a residual sum fused (oneDNN post-ops)" for the log.
  std::string describe() const;

 private:
  // The size class of an input: its batch and its pixel count in half-octave steps. Sizes of one class choose the
  // same format; eval at the images' own sizes sees hundreds of shapes, and timing each would cost more than it saves.
  using SizeClass = std::pair<int64_t, int64_t>;
  static SizeClass size_class(const at::Tensor& x);
  at::Tensor run(const at::Tensor& x, bool channels_last);
  at::Tensor decide_and_run(const at::Tensor& x);
  void use_format(bool channels_last);

  SegmentationModel model_;
  c10::Device device_;
  InferenceModelOptions options_;
  int folded_ = 0;
  bool weights_channels_last_ = false;  // eager: the format the weights are in now
  // TorchScript: one frozen module per format (frozen weights are constants in the format they had).
  std::map<bool, std::shared_ptr<torch::jit::Module>> scripts_;
  std::unique_ptr<FusedProgram> program_;    // eager on the CPU with options.fuse
  std::map<SizeClass, bool> channels_last_;  // auto: the decision per size class
};

}  // namespace petseg::model
