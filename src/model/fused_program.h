// The model's forward (recorded from its own `emit`, model/graph_ops.h) as a flat list of ops for CPU inference, each
// convolution's activation and residual sum run as oneDNN post-ops (mkldnn::_convolution_pointwise, what Inductor's
// freezing emits), weights packed, values freed at their last use; docs/deployment.md "The model" says more.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace torch::nn {
class Conv2dImpl;
}

namespace petseg::model {

class BatchNorm2dImpl;
class SegmentationModelImpl;

// A "same" convolution (stride 1, one group, odd kernel, padding = dilation * (kernel - 1) / 2) as a sum over its
// kernel taps (FusedProgram runs DeepLabV3's atrous convolutions so in bf16): the taps whose offset lands inside an
// h x w map, and their [out, in] weights stacked side by side as one [in, taps * out] matrix.
struct TapWeights {
  std::vector<std::array<int64_t, 2>> offsets;  // (dy, dx) per tap
  at::Tensor stacked;
};
TapWeights stack_taps(const at::Tensor& weight, int64_t dilation_h, int64_t dilation_w, int64_t h, int64_t w);
// x [N, in, h, w] (any memory format) -> the convolution's output plus `bias` (may be undefined), fp32, channels_last.
at::Tensor conv_by_taps(const at::Tensor& x, const TapWeights& taps, const at::Tensor& bias);

class FusedProgram {
 public:
  // Records `model`'s forward (eval mode, aux head skipped by the caller, BatchNorm folded or not) and fuses it. The
  // modules are read at each run (a weight's dtype and memory format as they are then), so the model must outlive the
  // program and keep its structure; the convolutions' weights are packed for oneDNN from their values at the first
  // run of each input shape and format, so a caller that changes those values needs a new program.
  explicit FusedProgram(SegmentationModelImpl& model);

  // [N,3,H,W] images in the weights' dtype, in the memory format to run in -> the `out` logits [N,C,H,W], float32.
  // Call under InferenceMode or NoGrad, from one thread at a time (the packed weights are filled on first use). Off
  // the CPU, or where ATen has no oneDNN (or no bf16 kernels on this CPU), the same ops run unfused.
  at::Tensor run(const at::Tensor& images) const;

  // Whether ATen's oneDNN convolution with post-ops is there (x86/ARM builds with MKLDNN), and runs in `dtype` on this
  // CPU (bf16 needs AVX512 or its ARM peers).
  static bool onednn_available();
  static bool onednn_runs(at::ScalarType dtype);
  // From this dilation on, a "same" convolution runs in bf16 as a sum over its taps (dilated_by_taps,
  // fused_program.cpp); wide_dilation says whether `conv` is one.
  static constexpr int64_t kWideDilation = 8;
  static bool wide_dilation(const torch::nn::Conv2dImpl& conv);

  int convolutions() const { return convolutions_; }
  int fused_activations() const { return fused_activations_; }
  int fused_sums() const { return fused_sums_; }
  // "61 convolutions, 45 with their activation and 16 with a residual sum fused (oneDNN post-ops)"
  std::string describe() const;

  enum class Op {
    kInput,
    kConv,
    kBatchNorm,
    kRelu,
    kHardswish,
    kHardsigmoid,
    kSigmoid,
    kGlobalAvgPool,
    kMaxPool,
    kAdd,
    kMul,
    kCat,
    kUpsampleLike
  };
  struct Node {
    Op op = Op::kInput;
    std::vector<int> inputs;  // node indices; a fused conv's residual is `sum`, not among them
    torch::nn::Conv2dImpl* conv = nullptr;
    BatchNorm2dImpl* bn = nullptr;
    int64_t kernel = 0, stride = 0, padding = 0, dim = 0;  // max pool; cat's dim
    Op activation = Op::kInput;  // a conv's fused activation (kRelu, kHardswish), kInput for none
    int sum = -1;                // a conv's fused residual: conv(x) + value[sum], before the activation
    int last_use = -1;           // the last node that reads this one's value (the output: past the end)
    bool removed = false;        // fused into a later node
  };
  const std::vector<Node>& nodes() const { return nodes_; }

 private:
  void fuse();
  void absorb_conv(int conv, int into);
  void compute_last_uses();
  at::Tensor step(const Node& node, int index, std::vector<at::Tensor>& values) const;
  at::Tensor run_conv(const Node& node, std::vector<at::Tensor>& values, int index) const;
  at::Tensor dilated_by_taps(const Node& node, int index, const at::Tensor& x) const;
  const at::Tensor& packed_weight(int index, const at::Tensor& x, const std::vector<int64_t>& padding,
                                  const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation) const;

  std::vector<Node> nodes_;
  // Per conv node, its weight packed for oneDNN (packed_weight) or stacked by taps (dilated_by_taps).
  struct Packed {
    at::ScalarType dtype = at::kFloat;
    std::vector<int64_t> input_size;
    at::Tensor packed;
    TapWeights taps;  // dilated_by_taps' weights
  };
  mutable std::vector<Packed> packed_;
  int output_ = -1;
  int convolutions_ = 0, fused_activations_ = 0, fused_sums_ = 0;
};

}  // namespace petseg::model
