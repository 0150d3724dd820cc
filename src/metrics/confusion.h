// Segmentation metrics from a confusion matrix kept on the device (as torchvision's reference ConfusionMatrix):
// per-class IoU, mean IoU, pixel accuracy, per-class accuracy. The matrix is a plain tensor so distributed runs
// can sum it across ranks before computing.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "core/labels.h"

namespace petseg::metrics {

struct SegmentationScores {
  std::vector<double> iou;             // per class; NaN for a class absent from both target and prediction
  std::vector<double> class_accuracy;  // recall per class; NaN when the class never occurs in the target
  double mean_iou = 0;                 // over classes with a defined IoU
  double pixel_accuracy = 0;
  int64_t pixels = 0;
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

// "class        IoU    acc" table for logs, with mIoU and pixel accuracy.
std::string format_scores(const SegmentationScores& scores, const std::vector<std::string>& class_names);

}  // namespace petseg::metrics
