// Segmentation metrics from a confusion matrix kept on the device (as torchvision's reference ConfusionMatrix):
// per-class IoU, Dice/F1, precision and recall, mean IoU, pixel accuracy, per-class accuracy, and their JSON form.
// The matrix is a plain tensor so distributed runs can sum it across ranks before computing.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/labels.h"

namespace petseg::metrics {

// Per-class scores follow torchmetrics' MulticlassJaccardIndex / MulticlassF1Score / MulticlassPrecision /
// MulticlassRecall (average=None, its default zero_division=0) except for one case: a class absent from both the
// target and the prediction (tp + fp + fn = 0) has no score, NaN in every list here (null in JSON), where
// torchmetrics reports 0. That is the case torchmetrics' average="macro" leaves out of its mean, so a mean over the
// defined entries of a list (mean_iou) is torchmetrics' macro average. Every other 0/0 is 0, as in torchmetrics:
// the precision of a class present but never predicted, the recall of a class predicted but never present.
struct SegmentationScores {
  std::vector<double> iou;             // per class: tp / (tp + fp + fn)
  std::vector<double> dice;            // per class: Dice = F1 = 2 tp / (2 tp + fp + fn)
  std::vector<double> precision;       // per class: tp / (tp + fp)
  std::vector<double> recall;          // per class: tp / (tp + fn)
  std::vector<double> class_accuracy;  // recall per class, older form: NaN whenever the class is not in the target
  double mean_iou = 0;                 // over classes with a defined IoU
  double pixel_accuracy = 0;
  int64_t pixels = 0;
  std::vector<std::vector<int64_t>> confusion;  // [C][C], rows = target class, columns = predicted class
};

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t num_classes);
  // target [N,H,W] int64 (kIgnoreIndex and any label outside [0,C) skipped), prediction [N,H,W] int64, same
  // device. No host read: safe once per eval batch.
  void update(const at::Tensor& target, const at::Tensor& prediction);
  void reset();
  // Sums the matrix over the ranks of a distributed run, in place, where it lives (the GPU under NCCL): each rank
  // saw its shard of the split. `allreduce_sum` is the communicator's (metrics does not depend on dist), as
  // torchvision's ConfusionMatrix.reduce_from_all_processes.
  void reduce(const std::function<void(at::Tensor&)>& allreduce_sum);
  // [C,C] int64, rows = target class, columns = predicted class: a view into the accumulator.
  at::Tensor& matrix() { return matrix_; }
  const at::Tensor& matrix() const { return matrix_; }
  SegmentationScores compute() const;  // one host sync
  int64_t num_classes() const { return num_classes_; }

 private:
  void set_counts(at::Tensor counts);

  int64_t num_classes_;
  at::Tensor counts_;  // [C*C+1]: the matrix, then one bin for every pixel that is not labelled
  at::Tensor matrix_;
};

// The per-class table of the training log and eval (IoU, Dice, precision and recall in %), then mIoU, the mean Dice
// and the pixel accuracy.
std::string format_scores(const SegmentationScores& scores, const std::vector<std::string>& class_names);

// {"classes": [names], "miou", "pixel_accuracy", "iou": [per class], "dice", "precision", "recall",
//  "confusion_matrix": [[row per target class]]}; per-class lists are indexed by class, NaN written as null.
// "classes" is left out when `class_names` is empty.
nlohmann::json scores_json(const SegmentationScores& scores, const std::vector<std::string>& class_names);

}  // namespace petseg::metrics
