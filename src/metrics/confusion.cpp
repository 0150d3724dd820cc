// Confusion matrix as an index_add_ of ones at target * C + prediction, on the tensors' device, with every pixel
// that is not labelled sent to one extra bin: no size is read back to the host.
#include "metrics/confusion.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <utility>

#include "core/check.h"

namespace petseg::metrics {

ConfusionMatrix::ConfusionMatrix(int64_t num_classes) : num_classes_(num_classes) {
  PETSEG_CHECK(num_classes >= 1, "a confusion matrix needs at least one class");
  reset();
}

void ConfusionMatrix::reset() { set_counts(at::zeros({num_classes_ * num_classes_ + 1}, at::kLong)); }

void ConfusionMatrix::set_counts(at::Tensor counts) {
  counts_ = std::move(counts);
  matrix_ = counts_.narrow(0, 0, num_classes_ * num_classes_).view({num_classes_, num_classes_});
}

void ConfusionMatrix::reduce(const std::function<void(at::Tensor&)>& allreduce_sum) {
  // The whole accumulator in one collective; the extra bin rides along, never read.
  if (allreduce_sum) allreduce_sum(counts_);
}

void ConfusionMatrix::update(const at::Tensor& target, const at::Tensor& prediction) {
  PETSEG_CHECK(target.sizes() == prediction.sizes(), "target and prediction shapes differ");
  if (counts_.device() != target.device()) set_counts(counts_.to(target.device()));
  const int64_t C = num_classes_;
  const at::Tensor t = target.reshape(-1).to(at::kLong), p = prediction.reshape(-1).to(at::kLong);
  // A fixed-size index (unlike masked_select) keeps the update free of host reads. A prediction outside [0,C) is
  // a caller's bug; it goes to the extra bin rather than into (or past) another class's cell.
  const at::Tensor labelled = (t >= 0).logical_and_(t < C).logical_and_(p >= 0).logical_and_(p < C);
  const at::Tensor index = at::where(labelled, t * C + p, C * C);
  counts_.index_add_(0, index, at::ones_like(index));
}

SegmentationScores ConfusionMatrix::compute() const {
  const at::Tensor m = matrix_.to(at::kCPU).to(at::kDouble);
  const auto a = m.accessor<double, 2>();
  const int64_t C = num_classes_;
  SegmentationScores s;
  double diag = 0, total = 0, iou_sum = 0;
  int iou_count = 0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t i = 0; i < C; ++i) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < C; ++j) {
      row += a[i][j];
      col += a[j][i];
      total += a[i][j];
    }
    diag += a[i][i];
    const double uni = row + col - a[i][i];
    s.iou.push_back(uni > 0 ? a[i][i] / uni : nan);
    s.class_accuracy.push_back(row > 0 ? a[i][i] / row : nan);
    if (uni > 0) {
      iou_sum += a[i][i] / uni;
      ++iou_count;
    }
  }
  s.mean_iou = iou_count ? iou_sum / iou_count : 0;
  s.pixel_accuracy = total > 0 ? diag / total : 0;
  s.pixels = static_cast<int64_t>(total);
  return s;
}

std::string format_scores(const SegmentationScores& s, const std::vector<std::string>& names) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  os << "  " << std::left << std::setw(12) << "class" << std::right << std::setw(8) << "IoU %" << std::setw(8)
     << "acc %"
     << "\n";
  for (size_t i = 0; i < s.iou.size(); ++i) {
    os << "  " << std::left << std::setw(12) << (i < names.size() ? names[i] : std::to_string(i)) << std::right
       << std::setw(8) << 100 * s.iou[i] << std::setw(8) << 100 * s.class_accuracy[i] << "\n";
  }
  os << "  mIoU " << 100 * s.mean_iou << " %, pixel accuracy " << 100 * s.pixel_accuracy << " %";
  return os.str();
}

}  // namespace petseg::metrics
