// What every segmentation model offers training, evaluation and export (SegmentationModelImpl, held by a
// SegmentationModel), and torchvision's _SimpleSegmentationModel (backbone -> classifier, aux_classifier) that
// DeepLabV3 and FCN share. Submodules carry torchvision's names: backbone., classifier., aux_classifier.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <type_traits>

#include "model/backbone.h"

namespace petseg::model {

struct SegmentationOutput {
  at::Tensor out;  // [N,C,H,W] logits at the input size
  at::Tensor aux;  // [N,C,H,W] aux logits, undefined without the aux head
};

class SegmentationModelImpl : public torch::nn::Module {
 public:
  // [N,3,H,W] -> out [N,C,H,W] (and aux [N,C,H,W] when the model has an aux head)
  virtual SegmentationOutput forward(const at::Tensor& x) = 0;
  // The same forward as graph nodes (model/graph_ops.h): what the ONNX exporter writes and the BatchNorm folder reads.
  virtual SegmentationNames emit(GraphOps& ops, const std::string& x) = 0;

  // Keeps the backbone fixed: no gradients, BatchNorm statistics frozen (eval mode even while training).
  void freeze_backbone(bool freeze = true);
  bool backbone_frozen() const { return backbone_frozen_; }
  void train(bool on = true) override;
  int64_t num_classes() const { return num_classes_; }
  // Whether it has an aux head (registered as "aux_classifier", as in torchvision).
  bool has_aux() const;
  // Inference that reads only `out` need not run the aux head (torchvision's models run it in eval mode too): with
  // skip on, forward leaves `aux` undefined. Training, export and folding see the head as before by default.
  void skip_aux(bool skip = true) { skip_aux_ = skip; }
  bool aux_skipped() const { return skip_aux_; }

 protected:
  // `type_name` names the module (printing, TorchScript's class names): "DeepLabV3", "FCN", "LRASPP".
  SegmentationModelImpl(std::string type_name, int64_t num_classes);
  int64_t num_classes_;

 private:
  bool backbone_frozen_ = false;
  bool skip_aux_ = false;
};

// A handle to any segmentation model: shared, -> access, nullptr when empty. A DeepLabV3 (or any other model's
// holder) converts to one and stays the same module.
class SegmentationModel : public torch::nn::ModuleHolder<SegmentationModelImpl> {
 public:
  /* implicit */ SegmentationModel(std::nullptr_t) : ModuleHolder(nullptr) {}
  /* implicit */ SegmentationModel(std::shared_ptr<SegmentationModelImpl> impl) : ModuleHolder(std::move(impl)) {}
  template <typename Impl, typename = std::enable_if_t<std::is_base_of_v<SegmentationModelImpl, Impl>>>
  /* implicit */ SegmentationModel(const torch::nn::ModuleHolder<Impl>& model)
      : ModuleHolder(std::shared_ptr<SegmentationModelImpl>(model.ptr())) {}
};

// torchvision's _SimpleSegmentationModel: out = classifier(features.out), aux = aux_classifier(features.aux), each
// upsampled to the input size. Both heads end in a 1x1 convolution at index 4 (DeepLabHead, FCNHead).
class SimpleSegmentationModelImpl : public SegmentationModelImpl {
 public:
  // [N,3,H,W] -> out [N,C,H,W] (and aux [N,C,H,W])
  SegmentationOutput forward(const at::Tensor& x) override;
  SegmentationNames emit(GraphOps& ops, const std::string& x) override;

  Backbone backbone{nullptr};
  torch::nn::Sequential classifier{nullptr};
  torch::nn::Sequential aux_classifier{nullptr};

 protected:
  using SegmentationModelImpl::SegmentationModelImpl;
  // Registers the three parts (aux_classifier may be empty), in torchvision's order.
  void set_parts(Backbone backbone, torch::nn::Sequential classifier, torch::nn::Sequential aux_classifier);

 private:
  template <class Ops>
  typename Ops::Output run(Ops& ops, const typename Ops::Value& x);
};

// Moves every 4-D parameter and buffer to channels_last memory (NHWC), as Python's
// model.to(memory_format=torch.channels_last); inputs should be converted the same way.
void convert_to_channels_last(torch::nn::Module& module);

// Bilinear (align_corners=False) resize of x to the spatial size of `like`; stays shape-generic when traced.
at::Tensor upsample_like(const at::Tensor& x, const at::Tensor& like);

}  // namespace petseg::model
