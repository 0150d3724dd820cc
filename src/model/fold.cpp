// BatchNorm folding: the pairs from a symbolic run of the forward, the arithmetic, and the in-place rewrite.
#include "model/fold.h"

#include <ATen/ops/rsqrt.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <map>

#include "core/check.h"
#include "model/graph_ops.h"

namespace petseg::model {
namespace {

namespace nn = torch::nn;

// The forward as dataflow: which value each Conv2d produced, how often each value is read, which value each
// BatchNorm2d read, and how often each layer ran.
class PairFinder : public GraphOps {
 public:
  explicit PairFinder(const nn::Module& root) : GraphOps(root) {}

  Value conv(nn::Conv2dImpl& conv, const Value& x) override {
    const Value y = node({x});
    producer_[y] = &conv;
    ++calls_[&conv];
    return y;
  }
  Value batch_norm(BatchNorm2dImpl& bn, const Value& x) override {
    if (bn.folded()) return x;
    ++calls_[&bn];
    reads_.push_back({x, &bn});
    return node({x});
  }
  Value relu(const Value& x) override { return node({x}); }
  Value hardswish(const Value& x) override { return node({x}); }
  Value hardsigmoid(const Value& x) override { return node({x}); }
  Value sigmoid(const Value& x) override { return node({x}); }
  Value global_avg_pool(const Value& x) override { return node({x}); }
  Value max_pool(const Value& x, int64_t, int64_t, int64_t) override { return node({x}); }
  Value add(const Value& a, const Value& b) override { return node({a, b}); }
  Value mul(const Value& a, const Value& b) override { return node({a, b}); }
  Value cat(const std::vector<Value>& xs, int64_t) override { return node(xs); }
  Value upsample_like(const Value& x, const Value& like) override { return node({x, like}); }

  // The model's outputs count as reads (a convolution whose output leaves the model keeps its own values).
  void read(const Value& v) {
    if (!v.empty()) ++uses_[v];
  }

  std::vector<ConvBatchNorm> pairs() const {
    std::vector<ConvBatchNorm> found;
    for (const auto& [x, bn] : reads_) {
      const auto producer = producer_.find(x);
      if (producer == producer_.end()) continue;
      nn::Conv2dImpl* conv = producer->second;
      if (uses_.at(x) != 1 || calls_.at(conv) != 1 || calls_.at(bn) != 1) continue;
      found.push_back({conv, bn, path_of(*conv), path_of(*bn)});
    }
    return found;
  }

 private:
  Value node(const std::vector<Value>& inputs) {
    for (const Value& v : inputs) read(v);
    return "v" + std::to_string(next_++);
  }

  int64_t next_ = 0;
  std::map<Value, nn::Conv2dImpl*> producer_;
  std::map<Value, int> uses_;
  std::map<const nn::Module*, int> calls_;
  std::vector<std::pair<Value, BatchNorm2dImpl*>> reads_;
};

// libtorch registers a bias-free Conv2d's "bias" as an undefined tensor and has no call that replaces a registered
// parameter; Module's table is reached through a pointer to its protected member, which a derived class may form.
struct ParameterTable : nn::Module {
  static torch::OrderedDict<std::string, at::Tensor>& of(nn::Module& m) { return m.*(&ParameterTable::parameters_); }
};

void set_conv_parameters(nn::Conv2dImpl& conv, const FoldedConv& folded) {
  conv.weight.set_data(folded.weight);
  if (conv.bias.defined()) {
    conv.bias.set_data(folded.bias);
    return;
  }
  at::Tensor bias = folded.bias.clone().set_requires_grad(conv.weight.requires_grad());
  at::Tensor* entry = ParameterTable::of(conv).find("bias");
  PETSEG_CHECK(entry != nullptr, "fold_batchnorm: a Conv2d without a \"bias\" entry (libtorch registers one)");
  *entry = bias;
  conv.bias = bias;
  conv.options.bias(true);
}

}  // namespace

std::vector<ConvBatchNorm> conv_batchnorm_pairs(SegmentationModelImpl& model) {
  PairFinder finder(model);
  const SegmentationNames y = model.emit(finder, "input");
  finder.read(y.out);
  finder.read(y.aux);
  return finder.pairs();
}

FoldedConv fold_conv_batchnorm(const nn::Conv2dImpl& conv, const BatchNorm2dImpl& bn) {
  PETSEG_CHECK(!bn.folded(), "fold_conv_batchnorm: the BatchNorm2d is folded already");
  const int64_t channels = conv.weight.size(0);
  PETSEG_CHECK(bn.weight.numel() == channels, "fold_conv_batchnorm: a convolution with ", channels,
               " output channels followed by a BatchNorm2d of ", bn.weight.numel());
  torch::NoGradGuard no_grad;
  const auto dtype = conv.weight.scalar_type();
  const at::Tensor scale = bn.weight.to(at::kDouble) * at::rsqrt(bn.running_var.to(at::kDouble) + bn.eps());
  const at::Tensor bias = conv.bias.defined() ? conv.bias.to(at::kDouble) : at::zeros({channels}, scale.options());
  FoldedConv folded;
  folded.weight = (conv.weight.to(at::kDouble) * scale.view({-1, 1, 1, 1})).to(dtype);
  folded.bias = ((bias - bn.running_mean.to(at::kDouble)) * scale + bn.bias.to(at::kDouble)).to(dtype);
  return folded;
}

int fold_batchnorm(SegmentationModelImpl& model) {
  PETSEG_CHECK(!model.is_training(),
               "fold_batchnorm: the model must be in eval mode (folding uses the running "
               "statistics that eval mode normalises with)");
  torch::NoGradGuard no_grad;
  const std::vector<ConvBatchNorm> pairs = conv_batchnorm_pairs(model);
  for (const ConvBatchNorm& p : pairs) {
    set_conv_parameters(*p.conv, fold_conv_batchnorm(*p.conv, *p.bn));
    p.bn->mark_folded();
  }
  return int(pairs.size());
}

}  // namespace petseg::model
