// The segmentation losses, written with masks and multiplications only: no boolean indexing, nonzero or .item(),
// whose results have sizes the host would have to read back in the middle of a step.
#include "train/loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/linalg_vector_norm.h>

#include <array>

#include "core/check.h"

namespace petseg::train {
namespace {

// smp's defaults.
constexpr double kDiceEps = 1e-7;
constexpr double kFocalGamma = 2.0;

// The one ignored value the terms below test for: a configured class is folded into kIgnoreIndex, so ignoring it
// is ignoring it in CrossEntropyLoss's or smp's sense (their ignore_index), while padding (255) stays ignored too.
at::Tensor fold_ignored(const at::Tensor& target, int64_t ignore_index) {
  if (ignore_index == kIgnoreIndex) return target;
  return target.masked_fill(target == ignore_index, kIgnoreIndex);
}

// [N,C,H,W] float: 1 where the pixel is labelled with the channel's class. An ignored pixel equals no class id
// below C (C <= 255), so it is zero in every channel, as smp's one_hot((t * mask)) * mask makes it.
at::Tensor class_channels(const at::Tensor& target, int64_t num_classes) {
  const at::Tensor classes = at::arange(num_classes, target.options()).view({1, num_classes, 1, 1});
  return (target.unsqueeze(1) == classes).to(at::kFloat);
}

// [N,1,H,W] float: 1 for a labelled pixel, 0 for an ignored one.
at::Tensor labelled(const at::Tensor& target) { return (target != kIgnoreIndex).unsqueeze(1).to(at::kFloat); }

at::Tensor cross_entropy_term(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& weights) {
  return at::cross_entropy_loss(logits, target, weights, at::Reduction::Mean, kIgnoreIndex);
}

// smp's DiceLoss, multiclass, from logits, in its own order of operations (the intersection from the L1 distance,
// as its soft_tversky_score computes it), so that values and gradients agree to rounding. Its sums run over the
// batch and the pixels together: the Dice of this batch. Under DistributedDataParallel that is this process's
// shard, and averaging the ranks' gradients averages their Dice losses, which is not the Dice of the global batch
// (smp under DDP does the same).
at::Tensor dice_term(const at::Tensor& logits, const at::Tensor& target) {
  const int64_t n = logits.size(0), c = logits.size(1);
  // log_softmax then exp, as smp: its gradient stays finite where a probability underflows.
  const at::Tensor p = (logits.log_softmax(1).exp() * labelled(target)).reshape({n, c, -1});
  const at::Tensor t = class_channels(target, c).reshape({n, c, -1});
  const std::array<int64_t, 2> dims{0, 2};  // the batch and the pixels, as smp's dims=(0, 2)
  const at::Tensor p_sum = p.sum(dims), t_sum = t.sum(dims);
  const at::Tensor difference = at::linalg_vector_norm(p - t, /*ord=*/1, dims);
  const at::Tensor intersection = (p_sum + t_sum - difference) / 2;
  const at::Tensor fp = p_sum - intersection, fn = t_sum - intersection;
  const at::Tensor score = intersection / (intersection + 0.5 * fp + 0.5 * fn).clamp_min(kDiceEps);
  // A class without a labelled pixel in the batch has no Dice: smp counts it as 0 (in the mean over C).
  return ((1.0 - score) * (t_sum > 0).to(at::kFloat)).mean();
}

// smp's FocalLoss, multiclass: focal_loss_with_logits(alpha=None, gamma=2, reduction="mean") of each class against
// the rest, on the labelled pixels only (smp selects them with a boolean index; a mask and the count of labelled
// pixels give the same mean without reading that count back).
at::Tensor focal_term(const at::Tensor& logits, const at::Tensor& target) {
  const at::Tensor mask = labelled(target);
  const at::Tensor bce =
      at::binary_cross_entropy_with_logits(logits, class_channels(target, logits.size(1)), /*weight=*/{},
                                           /*pos_weight=*/{}, at::Reduction::None);
  const at::Tensor pt = (-bce).exp();
  const at::Tensor per_class = ((1.0 - pt).pow(kFocalGamma) * bce * mask).sum({0, 2, 3});
  return (per_class / mask.sum()).mean();
}

void check_inputs(const Loss& loss, const at::Tensor& logits, const at::Tensor& target) {
  PETSEG_CHECK(logits.dim() == 4, "loss: logits must be [N,C,H,W], got ", logits.sizes());
  PETSEG_CHECK(target.dim() == 3 && target.size(0) == logits.size(0) && target.size(1) == logits.size(2) &&
                   target.size(2) == logits.size(3),
               "loss: target ", target.sizes(), " does not match logits ", logits.sizes(), " ([N,H,W] of [N,C,H,W])");
  PETSEG_CHECK(target.scalar_type() == at::kLong, "loss: target must be int64, got ", target.scalar_type());
  PETSEG_CHECK(logits.size(1) >= 1 && logits.size(1) <= kIgnoreIndex, "loss: ", logits.size(1),
               " classes; petseg's masks hold 1..255");
  PETSEG_CHECK(loss.ignore_index >= 0 && loss.ignore_index <= kIgnoreIndex, "--ignore-index must be in 0..255, got ",
               loss.ignore_index);
  if (loss.class_weights.defined()) {
    PETSEG_CHECK(loss.class_weights.dim() == 1 && loss.class_weights.size(0) == logits.size(1),
                 "--class-weights: ", loss.class_weights.numel(), " weights for ", logits.size(1), " classes");
    PETSEG_CHECK(loss.class_weights.is_floating_point(), "--class-weights: the weights must be floating point");
  }
}

}  // namespace

LossKind parse_loss_kind(const std::string& name) {
  check_choice("--loss", name, kLossChoices);
  if (name == "dice") return LossKind::kDice;
  if (name == "focal") return LossKind::kFocal;
  if (name == "ce+dice") return LossKind::kCrossEntropyDice;
  return LossKind::kCrossEntropy;
}

const char* loss_kind_name(LossKind kind) {
  switch (kind) {
    case LossKind::kDice:
      return "dice";
    case LossKind::kFocal:
      return "focal";
    case LossKind::kCrossEntropyDice:
      return "ce+dice";
    case LossKind::kCrossEntropy:
      break;
  }
  return "ce";
}

at::Tensor compute_loss(const Loss& loss, const at::Tensor& logits, const at::Tensor& target) {
  check_inputs(loss, logits, target);
  // float32 whatever autocast made the logits: softmax, exp and sums over many pixels lose too much in bf16.
  const at::Tensor x = logits.to(at::kFloat);
  const at::Tensor t = fold_ignored(target, loss.ignore_index);
  at::Tensor weights;
  if (loss.class_weights.defined()) weights = loss.class_weights.to(x.device(), at::kFloat, /*non_blocking=*/true);
  switch (loss.kind) {
    case LossKind::kDice:
      return dice_term(x, t);
    case LossKind::kFocal:
      return focal_term(x, t);
    case LossKind::kCrossEntropyDice:
      return cross_entropy_term(x, t, weights) + dice_term(x, t);
    case LossKind::kCrossEntropy:
      break;
  }
  return cross_entropy_term(x, t, weights);
}

}  // namespace petseg::train
