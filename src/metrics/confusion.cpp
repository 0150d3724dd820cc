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

#include <nlohmann/json.hpp>

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

namespace {

// One class's scores from its row (target) and column (prediction) sums; see SegmentationScores for the
// conventions.
void add_class_scores(double tp, double row, double col, SegmentationScores& s) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double fn = row - tp, fp = col - tp;
  const bool absent = tp + fp + fn == 0;
  s.iou.push_back(absent ? nan : tp / (tp + fp + fn));
  s.dice.push_back(absent ? nan : 2 * tp / (2 * tp + fp + fn));
  s.precision.push_back(absent ? nan : col > 0 ? tp / col : 0.0);
  s.recall.push_back(absent ? nan : row > 0 ? tp / row : 0.0);
  s.class_accuracy.push_back(row > 0 ? tp / row : nan);
}

}  // namespace

SegmentationScores ConfusionMatrix::compute() const {
  const at::Tensor counts = matrix_.to(at::kCPU).contiguous();
  const auto a = counts.accessor<int64_t, 2>();
  const int64_t C = num_classes_;
  SegmentationScores s;
  s.confusion.assign(size_t(C), std::vector<int64_t>(size_t(C)));
  double diag = 0, total = 0, iou_sum = 0;
  int iou_count = 0;
  for (int64_t i = 0; i < C; ++i) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < C; ++j) {
      s.confusion[i][j] = a[i][j];
      row += double(a[i][j]);
      col += double(a[j][i]);
    }
    total += row;
    diag += double(a[i][i]);
    add_class_scores(double(a[i][i]), row, col, s);
    if (!std::isnan(s.iou.back())) {
      iou_sum += s.iou.back();
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
  os << "  " << std::left << std::setw(14) << "class" << std::right << std::setw(8) << "IoU %" << std::setw(8)
     << "Dice %" << std::setw(13) << "precision %" << std::setw(10) << "recall %\n";
  const auto at = [](const std::vector<double>& v, size_t i) { return i < v.size() ? 100 * v[i] : NAN; };
  double dice_sum = 0;
  int dice_count = 0;
  for (size_t i = 0; i < s.iou.size(); ++i) {
    os << "  " << std::left << std::setw(14) << (i < names.size() ? names[i] : std::to_string(i)) << std::right
       << std::setw(8) << at(s.iou, i) << std::setw(8) << at(s.dice, i) << std::setw(13) << at(s.precision, i)
       << std::setw(10) << at(s.recall, i) << "\n";
    if (i < s.dice.size() && !std::isnan(s.dice[i])) dice_sum += s.dice[i], ++dice_count;
  }
  os << "  mIoU " << 100 * s.mean_iou << " %, mean Dice " << (dice_count ? 100 * dice_sum / dice_count : 0.0)
     << " %, pixel accuracy " << 100 * s.pixel_accuracy << " %";
  return os.str();
}

nlohmann::json scores_json(const SegmentationScores& s, const std::vector<std::string>& class_names) {
  // nlohmann writes a NaN double as null, which is how an undefined score reads in JSON.
  nlohmann::json j = {{"miou", s.mean_iou},
                      {"pixel_accuracy", s.pixel_accuracy},
                      {"iou", s.iou},
                      {"dice", s.dice},
                      {"precision", s.precision},
                      {"recall", s.recall},
                      {"confusion_matrix", s.confusion}};
  if (!class_names.empty()) j["classes"] = class_names;
  return j;
}

}  // namespace petseg::metrics
