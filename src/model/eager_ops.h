// The ops backend that runs a module's `run` on tensors (model/graph_ops.h says why forwards are written this way):
// each op is the call the forward made before, inlined, so `forward` costs what it did and traces the same.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/hardsigmoid.h>
#include <ATen/ops/hardswish.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include <vector>

#include "model/backbone.h"
#include "model/batchnorm.h"
#include "model/segmentation.h"

namespace petseg::model {

// Whether the calling thread's forwards may overwrite an activation's input. Every relu, hardswish and hardsigmoid
// a forward applies reads a temporary of its own (a convolution's or BatchNorm's output, a residual sum, which a
// folded BatchNorm passes on as it is) that no other op reads, so without autograd they can run in place, as
// torchvision's inplace=True layers do. Set by InplaceActivations (model/inference_model.h does, under InferenceMode).
bool inplace_activations();
class InplaceActivations {
 public:
  explicit InplaceActivations(bool on = true);
  ~InplaceActivations();
  InplaceActivations(const InplaceActivations&) = delete;
  InplaceActivations& operator=(const InplaceActivations&) = delete;

 private:
  bool before_;
};

struct EagerOps {
  using Value = at::Tensor;
  using Features = BackboneFeatures;
  using Output = SegmentationOutput;

  Value conv(torch::nn::Conv2dImpl& conv, const Value& x) { return conv.forward(x); }
  Value batch_norm(BatchNorm2dImpl& bn, const Value& x) { return bn.forward(x); }
  Value relu(Value x) { return inplace_activations() ? at::relu_(x) : at::relu(x); }
  Value hardswish(Value x) { return inplace_activations() ? at::hardswish_(x) : at::hardswish(x); }
  Value hardsigmoid(Value x) { return inplace_activations() ? at::hardsigmoid_(x) : at::hardsigmoid(x); }
  Value sigmoid(const Value& x) { return at::sigmoid(x); }
  Value global_avg_pool(const Value& x) { return at::adaptive_avg_pool2d(x, {1, 1}); }
  Value adaptive_avg_pool(torch::nn::AdaptiveAvgPool2dImpl& pool, const Value& x) { return pool.forward(x); }
  Value max_pool(const Value& x, int64_t kernel, int64_t stride, int64_t padding) {
    return at::max_pool2d(x, {kernel, kernel}, {stride, stride}, {padding, padding});
  }
  Value add(const Value& a, const Value& b) { return a + b; }
  // In place: `a` must be a temporary of the caller's (a residual block's last output), as `out += x` was.
  Value add_(Value a, const Value& b) { return a.add_(b); }
  Value mul(const Value& a, const Value& b) { return a * b; }
  Value cat(const std::vector<Value>& xs, int64_t dim) { return at::cat(xs, dim); }
  Value upsample_like(const Value& x, const Value& like) { return model::upsample_like(x, like); }
  Value sequential(torch::nn::SequentialImpl& seq, const Value& x) { return seq.forward(x); }
  template <class M, class... Args>
  auto child(M& module, const Args&... args) {
    return module.forward(args...);
  }
};

}  // namespace petseg::model
