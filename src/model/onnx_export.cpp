// ONNX export: OnnxGraph writes one node (or a few) per op of the forward; the model's own `emit` drives it.
#include "model/onnx_export.h"

#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/modules/conv.h>

#include <cstdio>
#include <map>
#include <set>

#include "core/check.h"
#include "core/fs.h"
#include "model/batchnorm.h"
#include "model/fold.h"
#include "model/graph_ops.h"

namespace petseg::model {
namespace {

namespace nn = torch::nn;

constexpr char kInputName[] = "input";

// One layer kind, one emitter; values and nodes are named after the module that made them where there is one
// ("backbone.layer1.0.conv1"), else after the op ("Relu_12"), and initializers after torchvision's state_dict keys.
class OnnxGraph : public GraphOps {
 public:
  OnnxGraph(SegmentationModelImpl& model, OnnxModelWriter& writer, bool fp16, const std::vector<ConvBatchNorm>& pairs)
      : GraphOps(model), w_(writer), float_type_(fp16 ? OnnxType::kFloat16 : OnnxType::kFloat) {
    for (const ConvBatchNorm& p : pairs) folded_into_[p.conv] = p.bn;
  }

  Value conv(nn::Conv2dImpl& conv, const Value& x) override {
    const std::string path = path_of(conv);
    std::vector<std::string> inputs = {x};
    const auto folded = folded_into_.find(&conv);
    if (folded != folded_into_.end()) {
      const FoldedConv f = fold_conv_batchnorm(conv, *folded->second);
      inputs.push_back(tensor(path + ".weight", f.weight));
      inputs.push_back(tensor(path + ".bias", f.bias));
      folded_bns_.insert(folded->second);
    } else {
      inputs.push_back(tensor(path + ".weight", conv.weight));
      if (conv.bias.defined()) inputs.push_back(tensor(path + ".bias", conv.bias));
    }
    return node("Conv", path, inputs, conv_attributes(conv, path));
  }

  Value batch_norm(BatchNorm2dImpl& bn, const Value& x) override {
    if (bn.folded() || folded_bns_.count(&bn)) return x;
    const std::string path = path_of(bn);
    return node("BatchNormalization", path,
                {x, tensor(path + ".weight", bn.weight), tensor(path + ".bias", bn.bias),
                 tensor(path + ".running_mean", bn.running_mean), tensor(path + ".running_var", bn.running_var)},
                {{"epsilon", float(bn.eps())}});
  }

  Value relu(const Value& x) override { return node("Relu", "Relu", {x}); }
  // HardSwish came with opset 14; before, x * hardsigmoid(x), which is its definition.
  Value hardswish(const Value& x) override {
    if (w_.opset() >= 14) return node("HardSwish", "HardSwish", {x});
    return mul(x, hardsigmoid(x));
  }
  // PyTorch's hardsigmoid is relu6(x + 3) / 6: ONNX's max(0, min(1, alpha * x + beta)) with alpha 1/6.
  Value hardsigmoid(const Value& x) override {
    return node("HardSigmoid", "HardSigmoid", {x}, {{"alpha", float(1.0 / 6.0)}, {"beta", 0.5f}});
  }
  Value sigmoid(const Value& x) override { return node("Sigmoid", "Sigmoid", {x}); }
  Value global_avg_pool(const Value& x) override { return node("GlobalAveragePool", "GlobalAveragePool", {x}); }
  Value max_pool(const Value& x, int64_t kernel, int64_t stride, int64_t padding) override {
    return node("MaxPool", "MaxPool", {x},
                {{"kernel_shape", std::vector<int64_t>{kernel, kernel}},
                 {"strides", std::vector<int64_t>{stride, stride}},
                 {"pads", std::vector<int64_t>{padding, padding, padding, padding}}});
  }
  Value add(const Value& a, const Value& b) override { return node("Add", "Add", {a, b}); }
  Value mul(const Value& a, const Value& b) override { return node("Mul", "Mul", {a, b}); }
  Value cat(const std::vector<Value>& xs, int64_t dim) override {
    return node("Concat", "Concat", xs, {{"axis", dim}});
  }

  // F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False) as PyTorch's own exporter writes it
  // (torch/onnx symbolic_helper._interpolate_helper): Resize to sizes = x's N,C and like's H,W, read from the shapes
  // at run time so that H and W may be dynamic, with coordinate_transformation_mode half_pixel.
  Value upsample_like(const Value& x, const Value& like) override {
    const Value nc = node("Slice", "Slice", {node("Shape", "Shape", {x}), int64s({0}), int64s({2})});
    const Value hw = node("Slice", "Slice", {node("Shape", "Shape", {like}), int64s({2}), int64s({4})});
    const Value sizes = node("Concat", "Concat", {nc, hw}, {{"axis", int64_t(0)}});
    return node("Resize", "Resize", {x, "", "", sizes},
                {{"mode", std::string("linear")}, {"coordinate_transformation_mode", std::string("half_pixel")}});
  }

  Value cast(const Value& x, OnnxType to) { return node("Cast", "Cast", {x}, {{"to", int64_t(to)}}); }
  // The graph output `name` reads `x` (a Cast to float32 from float16 graphs, else an Identity).
  void output(const Value& x, const std::string& name, const std::vector<OnnxDim>& dims) {
    if (float_type_ == OnnxType::kFloat16) {
      w_.add_node("Cast", name, {x}, {name}, {{"to", int64_t(OnnxType::kFloat)}});
    } else {
      w_.add_node("Identity", name, {x}, {name});
    }
    w_.add_output(name, OnnxType::kFloat, dims);
  }

 private:
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int i = 1; !names_.insert(name).second; ++i) name = base + "_" + std::to_string(i);
    return name;
  }

  Value node(const std::string& op, const std::string& base, const std::vector<std::string>& inputs,
             const std::vector<OnnxAttribute>& attributes = {}) {
    const std::string name = fresh(base);
    w_.add_node(op, name, inputs, {name}, attributes);
    return name;
  }

  // A weight as an initializer in the graph's float type (on the CPU, contiguous).
  std::string tensor(const std::string& base, const at::Tensor& t) {
    const at::Tensor data =
        t.detach().to(at::kCPU, float_type_ == OnnxType::kFloat16 ? at::kHalf : at::kFloat).contiguous();
    const std::string name = fresh(base);
    w_.add_initializer(name, float_type_, data.sizes().vec(), data.data_ptr(), data.nbytes());
    return name;
  }

  // An int64 vector constant, one initializer per distinct value.
  std::string int64s(const std::vector<int64_t>& values) {
    auto it = constants_.find(values);
    if (it != constants_.end()) return it->second;
    std::string base = "const";
    for (int64_t v : values) base += "_" + std::to_string(v);
    const std::string name = fresh(base);
    w_.add_initializer(name, OnnxType::kInt64, {int64_t(values.size())}, values.data(),
                       values.size() * sizeof(int64_t));
    return constants_[values] = name;
  }

  static std::vector<OnnxAttribute> conv_attributes(const nn::Conv2dImpl& conv, const std::string& path) {
    const auto& o = conv.options;
    PETSEG_CHECK(!o.transposed() && std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()),
                 "ONNX export: ", path, " is a transposed or non-zero-padded convolution (no emitter for it)");
    const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
    PETSEG_CHECK(padding != nullptr, "ONNX export: ", path, " pads \"same\" or \"valid\" (no emitter for it)");
    const auto pad = **padding, stride = *o.stride(), dilation = *o.dilation(), kernel = *o.kernel_size();
    return {{"kernel_shape", std::vector<int64_t>{kernel[0], kernel[1]}},
            {"strides", std::vector<int64_t>{stride[0], stride[1]}},
            {"pads", std::vector<int64_t>{pad[0], pad[1], pad[0], pad[1]}},
            {"dilations", std::vector<int64_t>{dilation[0], dilation[1]}},
            {"group", int64_t(o.groups())}};
  }

  OnnxModelWriter& w_;
  OnnxType float_type_;
  std::map<const nn::Conv2dImpl*, BatchNorm2dImpl*> folded_into_;
  std::set<const BatchNorm2dImpl*> folded_bns_;
  std::set<std::string> names_ = {kInputName};
  std::map<std::vector<int64_t>, std::string> constants_;
};

void check_options(const SegmentationModelImpl& model, const OnnxExportOptions& o) {
  PETSEG_CHECK(o.static_shape.empty() || o.static_shape.size() == 3, "--static takes N,H,W (3 sizes), got ",
               o.static_shape.size());
  for (int64_t d : o.static_shape) PETSEG_CHECK(d >= 1, "--static: sizes must be >= 1, got ", d);
  PETSEG_CHECK(!o.aux || model.has_aux(),
               "--aux: the model has no aux head (build it with --aux-loss, or export a "
               "checkpoint trained with one)");
  PETSEG_CHECK(!o.model_name.empty(), "ONNX export: no model name for the petseg.model metadata");
  PETSEG_CHECK(o.class_names.empty() || int64_t(o.class_names.size()) == model.num_classes(),
               "ONNX export: ", o.class_names.size(), " class names for a model with ", model.num_classes(),
               " classes");
}

// [N,C,H,W] with N, H, W symbols, or the static sizes.
std::vector<OnnxDim> dims(const OnnxExportOptions& o, int64_t channels) {
  if (o.static_shape.empty()) return {{-1, "N"}, {channels, ""}, {-1, "H"}, {-1, "W"}};
  return {{o.static_shape[0], ""}, {channels, ""}, {o.static_shape[1], ""}, {o.static_shape[2], ""}};
}

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ",") + item;
  return s;
}

std::string joined(const std::array<float, 3>& values) {
  std::vector<std::string> items;
  for (float v : values) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", double(v));
    items.push_back(text);
  }
  return joined(items);
}

void add_metadata(OnnxModelWriter& writer, const SegmentationModelImpl& model, const OnnxExportOptions& o) {
  std::vector<std::string> classes = o.class_names;
  for (int64_t c = int64_t(classes.size()); c < model.num_classes(); ++c) classes.push_back(std::to_string(c));
  writer.add_metadata("petseg.model", o.model_name);
  writer.add_metadata("petseg.classes", joined(classes));
  writer.add_metadata("petseg.mean", joined(o.mean));
  writer.add_metadata("petseg.std", joined(o.std));
  writer.add_metadata("petseg.image_size", std::to_string(o.image_size));
}

}  // namespace

void export_onnx(SegmentationModelImpl& model, const std::filesystem::path& path, const OnnxExportOptions& o) {
  OnnxModelWriter writer(o.opset);  // refuses an opset it cannot write
  check_options(model, o);
  check_output_file(path, o.force);
  torch::NoGradGuard no_grad;
  writer.add_input(kInputName, OnnxType::kFloat, dims(o, 3));
  OnnxGraph graph(model, writer, o.fp16, o.fold_batchnorm ? conv_batchnorm_pairs(model) : std::vector<ConvBatchNorm>{});
  const std::string x = o.fp16 ? graph.cast(kInputName, OnnxType::kFloat16) : std::string(kInputName);
  const SegmentationNames y = model.emit(graph, x);
  graph.output(y.out, "out", dims(o, model.num_classes()));
  if (o.aux) graph.output(y.aux, "aux", dims(o, model.num_classes()));
  add_metadata(writer, model, o);
  write_file_atomic(path, writer.serialize("petseg", PETSEG_VERSION));
}

}  // namespace petseg::model
