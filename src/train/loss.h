// The segmentation losses for imbalanced classes: cross-entropy (optionally class-weighted), Dice, focal, and
// cross-entropy + Dice, each equal in value and gradient to the implementation people know it from (see Loss).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "core/choices.h"
#include "core/labels.h"

namespace petseg::train {

enum class LossKind { kCrossEntropy, kDice, kFocal, kCrossEntropyDice };
inline const Choices kLossChoices = {"ce", "dice", "focal", "ce+dice"};  // --loss
LossKind parse_loss_kind(const std::string& name);                       // an error names --loss and the choices
const char* loss_kind_name(LossKind kind);

// What the loss of a training step is. Each kind is, on the same logits and targets (float32, within rounding):
//   ce       torch.nn.CrossEntropyLoss(weight=class_weights, ignore_index=...): the weighted mean over labelled
//            pixels, sum(w[t] * nll) / sum(w[t]).
//   dice     segmentation_models_pytorch 0.6.0 DiceLoss(mode="multiclass", from_logits=True, ignore_index=...)
//            with its defaults (smooth 0, eps 1e-7, log_loss False, all classes): 1 - soft Dice per class from
//            sums over the whole batch and its pixels, zero for a class with no labelled pixel in the batch, the
//            mean over all C classes (absent ones count as 0).
//   focal    segmentation_models_pytorch 0.6.0 FocalLoss(mode="multiclass", ignore_index=...) with its defaults
//            (alpha None, gamma 2, not normalized, mean): per class, the one-vs-rest sigmoid focal term
//            (1 - pt)^2 * BCE-with-logits averaged over the labelled pixels; the mean over the C classes.
//   ce+dice  ce + dice, 1:1 (class weights apply to the cross-entropy term only).
// Ignored pixels (kIgnoreIndex, and `ignore_index` when it names a class) count nowhere: not in a sum, not in a
// normalizer, and their logits get a zero gradient. A batch with no labelled pixel gives NaN for ce and focal (as
// PyTorch's and smp's means of nothing do) and 0 for dice.
struct Loss {
  LossKind kind = LossKind::kCrossEntropy;
  // [C] floating point, or undefined for none (all 1). Keep it on the logits' device: one elsewhere is copied to
  // it on every call.
  at::Tensor class_weights;
  // A class id (0..254) the loss ignores as well as kIgnoreIndex, as CrossEntropyLoss's ignore_index; the default
  // ignores kIgnoreIndex only.
  int64_t ignore_index = kIgnoreIndex;
};

// logits [N,C,H,W] of any floating dtype (bf16/fp16 under autocast are cast up: the loss is computed in float32),
// target [N,H,W] int64 with classes in [0,C) or an ignored value, on the logits' device -> a float32 scalar that
// backward() differentiates. Shapes are checked, values are not (that would read them back to the host): a target
// outside [0,C) that is not ignored is the caller's error, which cross-entropy's kernels reject (on CUDA, a
// device-side assert) and Dice and focal count as a labelled pixel of no class. No host synchronisation: safe in
// every training step.
at::Tensor compute_loss(const Loss& loss, const at::Tensor& logits, const at::Tensor& target);

}  // namespace petseg::train
