// Each module's forward is written once, as a template over an "ops" backend (`run(Ops&, x)`), and instantiated for
// two: EagerOps (model/eager_ops.h) runs it on tensors, which is what `forward` calls; GraphOps runs it on symbolic
// values (names), each op adding a node to a graph, which is what the ONNX exporter (model/onnx_export.h) and the
// BatchNorm folder (model/fold.h) build on. So the graph an export writes is the forward itself, not a copy of it
// that could drift. A new model family writes its `run` against these ops and needs no exporter code, unless it
// brings a layer kind GraphOps has no method for.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include <map>
#include <string>
#include <vector>

namespace petseg::model {

class BatchNorm2dImpl;
class GraphOps;

// What a backbone returns to the heads, as names of graph values (BackboneFeatures' twin).
struct BackboneNames {
  std::string aux, out;
};
// What a segmentation model returns, as names (SegmentationOutput's twin); aux is empty without the aux head.
struct SegmentationNames {
  std::string out, aux;
};

// A module that can stand in a Sequential (one input, one output) and is no leaf layer: its graph is its `run`.
class GraphEmitter {
 public:
  virtual ~GraphEmitter() = default;
  virtual std::string emit(GraphOps& ops, const std::string& x) = 0;
};

// The forward's operations on symbolic values. The leaf layers' emitters are virtual (each backend writes its own
// node kinds); the walk through containers is shared.
class GraphOps {
 public:
  using Value = std::string;
  using Features = BackboneNames;
  using Output = SegmentationNames;

  // `root` names the modules in errors ("classifier.0.convs.4"): its tree, as named_modules() walks it.
  explicit GraphOps(const torch::nn::Module& root);
  virtual ~GraphOps() = default;

  virtual Value conv(torch::nn::Conv2dImpl& conv, const Value& x) = 0;
  virtual Value batch_norm(BatchNorm2dImpl& bn, const Value& x) = 0;
  virtual Value relu(const Value& x) = 0;
  virtual Value hardswish(const Value& x) = 0;
  virtual Value hardsigmoid(const Value& x) = 0;
  virtual Value sigmoid(const Value& x) = 0;
  // Global average pooling ([N,C,H,W] -> [N,C,1,1]), functional or as an AdaptiveAvgPool2d(1).
  virtual Value global_avg_pool(const Value& x) = 0;
  Value adaptive_avg_pool(torch::nn::AdaptiveAvgPool2dImpl& pool, const Value& x);
  virtual Value max_pool(const Value& x, int64_t kernel, int64_t stride, int64_t padding) = 0;
  virtual Value add(const Value& a, const Value& b) = 0;
  // EagerOps adds into `a` (a temporary of the caller's); a graph has no such distinction.
  Value add_(const Value& a, const Value& b) { return add(a, b); }
  virtual Value mul(const Value& a, const Value& b) = 0;
  virtual Value cat(const std::vector<Value>& xs, int64_t dim) = 0;
  // Bilinear (align_corners=False) resize of x to like's height and width (model::upsample_like).
  virtual Value upsample_like(const Value& x, const Value& like) = 0;

  // A Sequential's children in order, each through `layer`.
  Value sequential(torch::nn::SequentialImpl& seq, const Value& x);
  // One module of a Sequential: a leaf layer (Conv2d, BatchNorm2d, ReLU, Sigmoid, AdaptiveAvgPool2d(1), Dropout: the
  // graph is eval mode's, so dropout is the identity), a Sequential, or a GraphEmitter; anything else is an error that
  // names the module's path and type.
  Value layer(torch::nn::Module& module, const Value& x);
  // A family module called by its parent's run (ResNet's layers, a model's backbone and heads).
  template <class M, class... Args>
  auto child(M& module, const Args&... args) {
    return module.emit(*this, args...);
  }

  // "backbone.layer1.0.conv1" (the root's own path is ""); "(not in the model)" for a module outside its tree.
  std::string path_of(const torch::nn::Module& module) const;

 private:
  std::map<const torch::nn::Module*, std::string> paths_;
};

}  // namespace petseg::model
