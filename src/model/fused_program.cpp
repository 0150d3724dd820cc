// FusedProgram: the forward recorded through GraphOps, its convolutions fused with what follows them, and a loop
// that runs the list on tensors.
#include "model/fused_program.h"

#include <ATen/Context.h>
#include <ATen/TensorIndexing.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/hardsigmoid.h>
#include <ATen/ops/hardswish.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/zeros.h>
#include <torch/nn/modules/conv.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>

#include "core/check.h"
#include "model/batchnorm.h"
#include "model/graph_ops.h"
#include "model/segmentation.h"

namespace petseg::model {
namespace {

using Op = FusedProgram::Op;
using Node = FusedProgram::Node;

// The forward's ops as nodes; a value's name is its node's index.
class Recorder : public GraphOps {
 public:
  Recorder(SegmentationModelImpl& model, std::vector<Node>& nodes) : GraphOps(model), nodes_(nodes) {
    nodes_.push_back(Node{});  // 0: the input
  }

  Value conv(torch::nn::Conv2dImpl& conv, const Value& x) override {
    Node n = op(Op::kConv, {x});
    n.conv = &conv;
    return add_node(std::move(n));
  }
  Value batch_norm(BatchNorm2dImpl& bn, const Value& x) override {
    if (bn.folded()) return x;  // the identity once folded into the convolution before it
    Node n = op(Op::kBatchNorm, {x});
    n.bn = &bn;
    return add_node(std::move(n));
  }
  Value relu(const Value& x) override { return add_node(op(Op::kRelu, {x})); }
  Value hardswish(const Value& x) override { return add_node(op(Op::kHardswish, {x})); }
  Value hardsigmoid(const Value& x) override { return add_node(op(Op::kHardsigmoid, {x})); }
  Value sigmoid(const Value& x) override { return add_node(op(Op::kSigmoid, {x})); }
  Value global_avg_pool(const Value& x) override { return add_node(op(Op::kGlobalAvgPool, {x})); }
  Value max_pool(const Value& x, int64_t kernel, int64_t stride, int64_t padding) override {
    Node n = op(Op::kMaxPool, {x});
    n.kernel = kernel, n.stride = stride, n.padding = padding;
    return add_node(std::move(n));
  }
  Value add(const Value& a, const Value& b) override { return add_node(op(Op::kAdd, {a, b})); }
  Value mul(const Value& a, const Value& b) override { return add_node(op(Op::kMul, {a, b})); }
  Value cat(const std::vector<Value>& xs, int64_t dim) override {
    Node n = op(Op::kCat, xs);
    n.dim = dim;
    return add_node(std::move(n));
  }
  Value upsample_like(const Value& x, const Value& like) override { return add_node(op(Op::kUpsampleLike, {x, like})); }

  static int index(const Value& v) { return std::stoi(v); }

 private:
  static Node op(Op kind, const std::vector<Value>& inputs) {
    Node n;
    n.op = kind;
    for (const Value& v : inputs) n.inputs.push_back(index(v));
    return n;
  }
  Value add_node(Node n) {
    nodes_.push_back(std::move(n));
    return std::to_string(nodes_.size() - 1);
  }

  std::vector<Node>& nodes_;
};

// A convolution oneDNN's fused op can run: zero padding given as numbers, not transposed.
bool plain_conv(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  return !o.transposed() && std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) &&
         std::holds_alternative<torch::ExpandingArray<2>>(o.padding());
}

c10::OperatorHandle onednn_op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

// Whether oneDNN's fused convolution runs in `dtype` on this CPU (bf16 needs AVX512 or its ARM peers): one tiny call,
// answered once per type.
bool onednn_runs_in(at::ScalarType dtype) {
  static const std::map<at::ScalarType, bool> answers = [] {
    std::map<at::ScalarType, bool> a;
    for (at::ScalarType t : {at::kFloat, at::kBFloat16}) {
      bool ok = FusedProgram::onednn_available();
      if (ok) {
        try {
          torch::jit::Stack stack{at::ones({1, 1, 2, 2}, t),
                                  at::ones({1, 1, 1, 1}, t),
                                  c10::IValue(),
                                  std::vector<int64_t>{0, 0},
                                  std::vector<int64_t>{1, 1},
                                  std::vector<int64_t>{1, 1},
                                  int64_t(1),
                                  std::string("relu"),
                                  c10::List<std::optional<at::Scalar>>(),
                                  std::string()};
          onednn_op("mkldnn::_convolution_pointwise", "").callBoxed(stack);
        } catch (const c10::Error&) {
          ok = false;
        }
      }
      a[t] = ok;
    }
    return a;
  }();
  const auto it = answers.find(dtype);
  return it != answers.end() && it->second;
}

const char* activation_name(Op op) {
  switch (op) {
    case Op::kRelu:
      return "relu";
    case Op::kHardswish:
      return "hardswish";
    default:
      return "none";
  }
}

at::Tensor activate(at::Tensor y, Op activation) {
  if (activation == Op::kRelu) return at::relu_(y);
  if (activation == Op::kHardswish) return at::hardswish_(y);
  return y;
}

}  // namespace

bool FusedProgram::onednn_available() {
  return at::hasMKLDNN() && c10::Dispatcher::singleton().findSchema({"mkldnn::_convolution_pointwise", ""}) &&
         c10::Dispatcher::singleton().findSchema({"mkldnn::_convolution_pointwise_", "binary"}) &&
         c10::Dispatcher::singleton().findSchema({"mkldnn::_convolution_pointwise", "binary"});
}

bool FusedProgram::onednn_runs(at::ScalarType dtype) { return onednn_runs_in(dtype); }

FusedProgram::FusedProgram(SegmentationModelImpl& model) {
  Recorder recorder(model, nodes_);
  output_ = Recorder::index(model.emit(recorder, "0").out);
  for (const Node& n : nodes_) convolutions_ += n.op == Op::kConv;
  fuse();
  compute_last_uses();
  packed_.resize(nodes_.size());
}

void FusedProgram::absorb_conv(int conv, int into) {
  Node fused = nodes_[size_t(conv)];
  nodes_[size_t(conv)].removed = true;
  nodes_[size_t(into)] = std::move(fused);
}

// A convolution's output that only an add or an activation reads moves to that reader's place: it computes there
// (its inputs are all earlier) with the add's other operand as a oneDNN sum post-op and the activation as an
// eltwise post-op. Sum first, then the ReLU after it (oneDNN allows ReLU after a sum; Hardswish only alone).
void FusedProgram::fuse() {
  std::vector<int> readers(nodes_.size(), 0);
  for (const Node& n : nodes_) {
    for (int i : n.inputs) ++readers[size_t(i)];
  }
  readers[size_t(output_)] += 1;
  auto bare_conv = [&](int i) {
    const Node& n = nodes_[size_t(i)];
    return n.op == Op::kConv && readers[size_t(i)] == 1 && n.activation == Op::kInput && n.sum < 0 &&
           plain_conv(*n.conv);
  };
  for (int i = 1; i < int(nodes_.size()); ++i) {
    const Node n = nodes_[size_t(i)];
    if (n.op == Op::kAdd) {
      for (int k = 0; k < 2; ++k) {
        const int c = n.inputs[size_t(k)], other = n.inputs[size_t(1 - k)];
        if (c == other || !bare_conv(c)) continue;
        absorb_conv(c, i);
        nodes_[size_t(i)].sum = other;
        ++fused_sums_;
        break;
      }
    } else if (n.op == Op::kRelu || n.op == Op::kHardswish) {
      const int c = n.inputs[0];
      const Node& in = nodes_[size_t(c)];
      const bool alone =
          in.op == Op::kConv && readers[size_t(c)] == 1 && in.activation == Op::kInput && plain_conv(*in.conv);
      if (alone && (in.sum < 0 || n.op == Op::kRelu)) {
        absorb_conv(c, i);
        nodes_[size_t(i)].activation = n.op;
        ++fused_activations_;
      }
    }
  }
}

void FusedProgram::compute_last_uses() {
  for (Node& n : nodes_) n.last_use = -1;
  for (int i = 0; i < int(nodes_.size()); ++i) {
    const Node& n = nodes_[size_t(i)];
    if (n.removed) continue;
    for (int j : n.inputs) nodes_[size_t(j)].last_use = i;
    if (n.sum >= 0) nodes_[size_t(n.sum)].last_use = i;
  }
  nodes_[size_t(output_)].last_use = INT_MAX;
  nodes_[0].last_use = INT_MAX;  // the caller's tensor: never written
}

// The weight in the layout oneDNN's convolution wants for inputs shaped as x (what Inductor's freezing stores; ATen
// packs it for NHWC, and a convolution with a packed weight computes in NHWC whatever its input's format), kept while
// the input's shape and the weight's dtype stay the same: a new shape packs again (eval at each image's own size
// does, per image), which costs about what an unpacked call pays each time, oneDNN reordering a plain weight on every
// call. The values are the module's at packing time: InferenceModel changes a weight's format or dtype, never them.
const at::Tensor& FusedProgram::packed_weight(int index, const at::Tensor& x, const std::vector<int64_t>& padding,
                                              const std::vector<int64_t>& stride,
                                              const std::vector<int64_t>& dilation) const {
  const at::Tensor& weight = nodes_[size_t(index)].conv->weight;
  Packed& p = packed_[size_t(index)];
  if (!p.packed.defined() || p.dtype != weight.scalar_type() || p.input_size != x.sizes()) {
    static const c10::OperatorHandle reorder = onednn_op("mkldnn::_reorder_convolution_weight", "");
    torch::jit::Stack stack{weight,         padding, stride, dilation, nodes_[size_t(index)].conv->options.groups(),
                            x.sizes().vec()};
    reorder.callBoxed(stack);
    p = Packed{weight.scalar_type(), x.sizes().vec(), stack[0].toTensor(), {}};
  }
  return p.packed;
}

// A "same" convolution (stride 1, one group, padding = dilation * (kernel - 1) / 2) whose dilation is wide: DeepLabV3's
// ASPP (rates 12, 24, 36). In bf16 oneDNN 3.10 runs it 8-20x slower than the same convolution undilated (2048 -> 256
// channels on a 65x65 map, AMX: 285-815 ms against 34 ms), while its fp32 kernel skips the padding and is fine; and
// where a tap's offset reaches past the feature map, that tap only ever reads padding. The backbone's dilations 2
// and 4 stay with oneDNN.
bool FusedProgram::wide_dilation(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  if (!plain_conv(conv) || o.groups() != 1) return false;
  const auto pad = *std::get<torch::ExpandingArray<2>>(o.padding());
  for (size_t d = 0; d < 2; ++d) {
    const int64_t k = (*o.kernel_size())[d], dil = (*o.dilation())[d];
    if ((*o.stride())[d] != 1 || k % 2 == 0 || pad[d] != dil * (k - 1) / 2) return false;
  }
  return std::min((*o.dilation())[0], (*o.dilation())[1]) >= kWideDilation;
}

// The convolution as a sum over its kernel taps: y[p] = b + sum_t W_t x[p + offset_t], each W_t a 1x1 convolution.
// The taps whose offset reaches a pixel of the map (others read only padding) go through one matrix product of the
// NHWC pixels with their weights side by side (oneDNN's bf16 AMX or MKL's GEMM: the dense kernels), then each tap's
// block of the product (rounded to the input's type once, as a convolution's output is) is added, shifted, over the
// pixels where it lands, the sums in fp32.
TapWeights stack_taps(const at::Tensor& weight, int64_t dilation_h, int64_t dilation_w, int64_t h, int64_t w) {
  const int64_t kh = weight.size(2), kw = weight.size(3);
  TapWeights t;
  std::vector<at::Tensor> blocks;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t oy = (i - kh / 2) * dilation_h, ox = (j - kw / 2) * dilation_w;
      if (std::abs(oy) >= h || std::abs(ox) >= w) continue;  // reads only padding
      t.offsets.push_back({oy, ox});
      blocks.push_back(weight.select(3, j).select(2, i));  // [out, in]
    }
  }
  t.stacked = at::cat(blocks, 0).t().contiguous();  // [in, taps * out]
  return t;
}

at::Tensor conv_by_taps(const at::Tensor& x, const TapWeights& taps, const at::Tensor& bias) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t t_count = int64_t(taps.offsets.size()), co = taps.stacked.size(1) / t_count;
  const at::Tensor pixels = x.permute({0, 2, 3, 1}).reshape({n * h * w, c});
  const at::Tensor product = pixels.mm(taps.stacked).view({n, h, w, t_count, co});
  at::Tensor out = bias.defined() ? bias.to(at::kFloat).expand({n, h, w, co}).clone()
                                  : at::zeros({n, h, w, co}, x.options().dtype(at::kFloat));
  using at::indexing::Slice;
  for (int64_t t = 0; t < t_count; ++t) {
    const int64_t oy = taps.offsets[size_t(t)][0], ox = taps.offsets[size_t(t)][1];
    const int64_t r0 = std::max<int64_t>(0, -oy), r1 = std::min(h, h - oy);
    const int64_t c0 = std::max<int64_t>(0, -ox), c1 = std::min(w, w - ox);
    out.index({Slice(), Slice(r0, r1), Slice(c0, c1)})
        .add_(product.select(3, t).index({Slice(), Slice(r0 + oy, r1 + oy), Slice(c0 + ox, c1 + ox)}));
  }
  return out.permute({0, 3, 1, 2});  // [N, out, H, W] fp32, channels_last
}

// The stacked weights are kept per input shape, as the packed weights are.
at::Tensor FusedProgram::dilated_by_taps(const Node& node, int index, const at::Tensor& x) const {
  const torch::nn::Conv2dImpl& conv = *node.conv;
  Packed& p = packed_[size_t(index)];
  if (!p.taps.stacked.defined() || p.dtype != conv.weight.scalar_type() || p.input_size != x.sizes()) {
    p = Packed{
        conv.weight.scalar_type(),
        x.sizes().vec(),
        {},
        stack_taps(conv.weight, (*conv.options.dilation())[0], (*conv.options.dilation())[1], x.size(2), x.size(3))};
  }
  at::Tensor y = activate(conv_by_taps(x, p.taps, conv.bias), node.activation).to(x.scalar_type());
  return x.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? y : y.contiguous();
}

at::Tensor FusedProgram::run_conv(const Node& node, std::vector<at::Tensor>& values, int index) const {
  const at::Tensor& x = values[size_t(node.inputs[0])];
  torch::nn::Conv2dImpl& conv = *node.conv;
  const bool onednn = x.device().is_cpu() && plain_conv(conv) && onednn_runs(x.scalar_type());
  if (!onednn) {
    at::Tensor y = conv.forward(x);
    if (node.sum >= 0) y.add_(values[size_t(node.sum)]);
    return activate(std::move(y), node.activation);
  }
  if (node.sum < 0 && x.scalar_type() == at::kBFloat16 && wide_dilation(conv)) return dilated_by_taps(node, index, x);
  const auto& o = conv.options;
  auto ints = [](const torch::ExpandingArray<2>& a) { return std::vector<int64_t>(a->begin(), a->end()); };
  const std::vector<int64_t> padding = ints(std::get<torch::ExpandingArray<2>>(o.padding()));
  const std::vector<int64_t> stride = ints(o.stride()), dilation = ints(o.dilation());
  const c10::IValue bias = conv.bias.defined() ? c10::IValue(conv.bias) : c10::IValue();
  const c10::List<std::optional<at::Scalar>> no_scalars;
  const at::Tensor& weight = packed_weight(index, x, padding, stride, dilation);
  if (node.sum < 0) {
    static const c10::OperatorHandle op = onednn_op("mkldnn::_convolution_pointwise", "");
    torch::jit::Stack stack{x,          weight,       bias,       padding,
                            stride,     dilation,     o.groups(), std::string(activation_name(node.activation)),
                            no_scalars, std::string()};
    op.callBoxed(stack);
    return stack[0].toTensor();
  }
  at::Tensor& other = values[size_t(node.sum)];
  std::vector<int64_t> out_size = {x.size(0), conv.weight.size(0)};
  for (size_t d = 0; d < 2; ++d) {
    const int64_t k = conv.weight.size(int64_t(d) + 2);
    out_size.push_back((x.size(int64_t(d) + 2) + 2 * padding[d] - dilation[d] * (k - 1) - 1) / stride[d] + 1);
  }
  if (other.sizes() != at::IntArrayRef(out_size)) {  // a broadcast residual: oneDNN's sum wants the output's shape
    Node plain = node;
    plain.sum = -1, plain.activation = Op::kInput;
    return activate(run_conv(plain, values, index).add_(other), node.activation);
  }
  // oneDNN's bf16 sum + ReLU fails on contiguous (NCHW) tensors (an ATen internal assert): the ReLU runs after it.
  const bool relu_after_sum = node.activation == Op::kRelu;
  const bool fuse_relu =
      relu_after_sum && (x.scalar_type() == at::kFloat || x.suggest_memory_format() == at::MemoryFormat::ChannelsLast);
  const c10::IValue unary = fuse_relu ? c10::IValue(std::string("relu")) : c10::IValue();
  // With a packed weight oneDNN computes in NHWC whatever the input's format, so the sum is written in place into a
  // residual that is channels_last, dies here and is not the convolution's own input.
  const bool in_place = node.sum != 0 && node.sum != node.inputs[0] && nodes_[size_t(node.sum)].last_use == index &&
                        other.is_contiguous(at::MemoryFormat::ChannelsLast) && other.scalar_type() == x.scalar_type();
  at::Tensor y;
  if (in_place) {
    static const c10::OperatorHandle op = onednn_op("mkldnn::_convolution_pointwise_", "binary");
    torch::jit::Stack stack{
        other,           x,     weight,     bias,         padding, stride, dilation, o.groups(), std::string("add"),
        at::Scalar(1.0), unary, no_scalars, c10::IValue()};
    op.callBoxed(stack);
    y = stack[0].toTensor();
  } else {
    static const c10::OperatorHandle op = onednn_op("mkldnn::_convolution_pointwise", "binary");
    torch::jit::Stack stack{x,
                            other,
                            weight,
                            bias,
                            padding,
                            stride,
                            dilation,
                            o.groups(),
                            std::string("add"),
                            at::Scalar(1.0),
                            unary,
                            no_scalars,
                            c10::IValue()};
    op.callBoxed(stack);
    y = stack[0].toTensor();
  }
  return relu_after_sum && !fuse_relu ? at::relu_(y) : y;
}

namespace {

// add or mul, in place into an operand that dies here (`dies`) and already has the result's shape (not a broadcast).
at::Tensor add_or_mul(bool add, at::Tensor& a, at::Tensor& b, bool a_dies, bool b_dies) {
  const auto shape = at::infer_size(a.sizes(), b.sizes());
  if (a_dies && a.sizes() == shape) return add ? a.add_(b) : a.mul_(b);
  if (b_dies && b.sizes() == shape) return add ? b.add_(a) : b.mul_(a);
  return add ? a + b : a * b;
}

}  // namespace

at::Tensor FusedProgram::step(const Node& n, int i, std::vector<at::Tensor>& v) const {
  auto in = [&](size_t k) -> at::Tensor& { return v[size_t(n.inputs[k])]; };
  // Whether an op may write into input k: its value dies here (never the caller's images) and owns its elements
  // (not a broadcast view).
  auto dies = [&](size_t k) {
    return nodes_[size_t(n.inputs[k])].last_use == i && in(k).is_non_overlapping_and_dense();
  };
  switch (n.op) {
    case Op::kInput:
      return {};
    case Op::kConv:
      return run_conv(n, v, i);
    case Op::kBatchNorm:
      return at::batch_norm(in(0), n.bn->weight, n.bn->bias, n.bn->running_mean, n.bn->running_var,
                            /*training=*/false, 0.0, n.bn->eps(), /*cudnn_enabled=*/true);
    case Op::kRelu:
      return dies(0) ? at::relu_(in(0)) : at::relu(in(0));
    case Op::kHardswish:
      return dies(0) ? at::hardswish_(in(0)) : at::hardswish(in(0));
    case Op::kHardsigmoid:
      return dies(0) ? at::hardsigmoid_(in(0)) : at::hardsigmoid(in(0));
    case Op::kSigmoid:
      return dies(0) ? at::sigmoid_(in(0)) : at::sigmoid(in(0));
    case Op::kGlobalAvgPool: {
      // Channels-last: avg_pool2d over the whole image has the vectorized kernel there (5-10x adaptive pooling's in
      // bf16); contiguous: adaptive pooling's.
      const at::Tensor& x = in(0);
      return x.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::avg_pool2d(x, {x.size(2), x.size(3)})
                                                                         : at::adaptive_avg_pool2d(x, {1, 1});
    }
    case Op::kMaxPool:
      return at::max_pool2d(in(0), {n.kernel, n.kernel}, {n.stride, n.stride}, {n.padding, n.padding});
    case Op::kAdd:
    case Op::kMul:
      return add_or_mul(n.op == Op::kAdd, in(0), in(1), dies(0), dies(1));
    case Op::kCat: {
      std::vector<at::Tensor> xs;
      for (size_t k = 0; k < n.inputs.size(); ++k) xs.push_back(in(k));
      return at::cat(xs, n.dim);
    }
    case Op::kUpsampleLike: {
      const at::Tensor& x = in(0);
      const int64_t h = in(1).size(-2), w = in(1).size(-1);
      if (i == output_) {  // the logits: few channels, read in fp32 anyway; NCHW fp32 is the fast kernel there
        return at::upsample_bilinear2d(x.to(at::kFloat).contiguous(), {h, w}, /*align_corners=*/false);
      }
      if (x.size(-2) == 1 && x.size(-1) == 1) return x.expand({x.size(0), x.size(1), h, w});  // one pixel: itself
      return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
    }
  }
  PETSEG_FAIL("fused program: node ", i, " has an unknown op");
}

at::Tensor FusedProgram::run(const at::Tensor& images) const {
  std::vector<at::Tensor> v(nodes_.size());
  v[0] = images;
  for (int i = 1; i < int(nodes_.size()); ++i) {
    const Node& n = nodes_[size_t(i)];
    if (n.removed) continue;
    v[size_t(i)] = step(n, i, v);
    for (int j : n.inputs) {
      if (nodes_[size_t(j)].last_use == i) v[size_t(j)].reset();
    }
    if (n.sum >= 0 && nodes_[size_t(n.sum)].last_use == i) v[size_t(n.sum)].reset();
  }
  return v[size_t(output_)].to(at::kFloat);
}

std::string FusedProgram::describe() const {
  std::ostringstream os;
  os << convolutions_ << " convolutions, " << fused_activations_ << " with their activation and " << fused_sums_
     << " with a residual sum fused" << (onednn_available() ? " (oneDNN post-ops)" : " (no oneDNN: run unfused)");
  return os.str();
}

}  // namespace petseg::model
