// Confusion matrix via bincount of target * C + prediction over the non-ignored pixels, on the tensors' device.
#include "metrics/confusion.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/check.h"

namespace petseg::metrics {

ConfusionMatrix::ConfusionMatrix(int64_t num_classes) : num_classes_(num_classes) {
  PETSEG_CHECK(num_classes >= 1, "a confusion matrix needs at least one class");
  reset();
}

void ConfusionMatrix::reset() { matrix_ = at::zeros({num_classes_, num_classes_}, at::kLong); }

void ConfusionMatrix::reduce(const std::function<void(at::Tensor&)>& allreduce_sum) {
  if (allreduce_sum) allreduce_sum(matrix_);
}

void ConfusionMatrix::update(const at::Tensor& target, const at::Tensor& prediction) {
  PETSEG_CHECK(target.sizes() == prediction.sizes(), "target and prediction shapes differ");
  if (matrix_.device() != target.device()) matrix_ = matrix_.to(target.device());
  const at::Tensor t = target.reshape(-1), p = prediction.reshape(-1).to(at::kLong);
  const at::Tensor keep = (t >= 0).logical_and(t < num_classes_);
  const at::Tensor idx = t.masked_select(keep) * num_classes_ + p.masked_select(keep);
  matrix_ += at::bincount(idx, {}, num_classes_ * num_classes_).reshape({num_classes_, num_classes_});
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
