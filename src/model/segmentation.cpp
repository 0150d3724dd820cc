// The common behaviour of the segmentation models (freezing, mode) and torchvision's _SimpleSegmentationModel.
#include "model/segmentation.h"

#include <ATen/ops/upsample_bilinear2d.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/modules/conv.h>

#include "core/check.h"
#include "model/eager_ops.h"

namespace petseg::model {
namespace nn = torch::nn;

namespace {

thread_local bool t_inplace_activations = false;

}  // namespace

bool inplace_activations() { return t_inplace_activations; }

InplaceActivations::InplaceActivations(bool on) : before_(t_inplace_activations) { t_inplace_activations = on; }

InplaceActivations::~InplaceActivations() { t_inplace_activations = before_; }

at::Tensor upsample_like(const at::Tensor& x, const at::Tensor& like) {
  const int64_t h = like.size(-2), w = like.size(-1);
  if (torch::jit::tracer::isTracing()) {
    // C++ ints are constants to the tracer; stash the traced sizes so an exported module works at any size
    // (what Python's tracer does for F.interpolate(size=x.shape[-2:])).
    for (size_t i = 0; i < 2; ++i) {
      torch::jit::tracer::ArgumentStash::stashIntArrayRefElem(
          "output_size", 2, i, torch::jit::tracer::getSizeOf(like, like.dim() - 2 + int64_t(i)));
    }
  }
  return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
}

void convert_to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  for (auto& b : module.buffers()) {
    if (b.dim() == 4) b.set_data(b.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

SegmentationModelImpl::SegmentationModelImpl(std::string type_name, int64_t num_classes)
    : torch::nn::Module(std::move(type_name)), num_classes_(num_classes) {
  PETSEG_CHECK(num_classes >= 1, "--num-classes must be >= 1, got ", num_classes);
}

void SegmentationModelImpl::freeze_backbone(bool freeze) {
  backbone_frozen_ = freeze;
  const std::shared_ptr<torch::nn::Module> backbone = named_children()["backbone"];
  for (auto& p : backbone->parameters()) p.set_requires_grad(!freeze);
  backbone->train(is_training() && !freeze);
}

void SegmentationModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (backbone_frozen_) named_children()["backbone"]->eval();
}

bool SegmentationModelImpl::has_aux() const { return named_children().contains("aux_classifier"); }

void SimpleSegmentationModelImpl::set_parts(Backbone backbone_module, nn::Sequential classifier_head,
                                            nn::Sequential aux_head) {
  backbone = register_module("backbone", std::move(backbone_module));
  classifier = register_module("classifier", std::move(classifier_head));
  if (aux_head) aux_classifier = register_module("aux_classifier", std::move(aux_head));
}

// [N,3,H,W] -> out [N,C,H,W] (and aux [N,C,H,W])
template <class Ops>
typename Ops::Output SimpleSegmentationModelImpl::run(Ops& ops, const typename Ops::Value& x) {
  const typename Ops::Features f = ops.child(*backbone, x);
  typename Ops::Output result;
  result.out = ops.upsample_like(ops.sequential(*classifier, f.out), x);
  if (aux_classifier && !aux_skipped()) result.aux = ops.upsample_like(ops.sequential(*aux_classifier, f.aux), x);
  return result;
}

SegmentationOutput SimpleSegmentationModelImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

SegmentationNames SimpleSegmentationModelImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }


}  // namespace petseg::model
