// BatchNorm folding for inference: a BatchNorm2d in eval mode is an affine map per channel, so one that reads a
// convolution's output (and nothing else reads it) is the same convolution with scaled weights and a shifted bias.
// The pairs come from running the model's forward as a graph (model/graph_ops.h): they follow the dataflow, not
// module names or registration order, and a new model family needs nothing here.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/conv.h>

#include <string>
#include <vector>

#include "model/batchnorm.h"
#include "model/segmentation.h"

namespace petseg::model {

struct ConvBatchNorm {
  torch::nn::Conv2dImpl* conv = nullptr;
  BatchNorm2dImpl* bn = nullptr;
  std::string conv_path, bn_path;  // "backbone.layer1.0.conv1", "backbone.layer1.0.bn1"
};

// Every BatchNorm2d (not yet folded) whose only input is the output of a Conv2d that nothing else reads, each
// layer called once per forward.
std::vector<ConvBatchNorm> conv_batchnorm_pairs(SegmentationModelImpl& model);

// The convolution that computes bn(conv(x)) in eval mode: weight * gamma / sqrt(var + eps) per output channel, bias
// (conv's, or 0) shifted by the running mean. Computed in double, returned in the convolution's dtype and device.
struct FoldedConv {
  at::Tensor weight, bias;
};
FoldedConv fold_conv_batchnorm(const torch::nn::Conv2dImpl& conv, const BatchNorm2dImpl& bn);

// Folds every pair of `model` (in eval mode) in place: the convolution takes the folded weight and bias (a bias is
// registered where it had none), the BatchNorm2d becomes the identity (BatchNorm2dImpl::mark_folded). Returns the
// number of layers folded. The model then computes the same function in eval mode and can be cast (bf16, fp16).
int fold_batchnorm(SegmentationModelImpl& model);

}  // namespace petseg::model
