// metrics/confusion: a hand-computed case, the ignore index, torchvision's reference ConfusionMatrix, torchmetrics'
// per-class scores, the JSON form.
#include "metrics/confusion.h"

#include <ATen/ops/equal.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/weights.h"
#include "test_util.h"

namespace petseg::metrics {
namespace {

TEST(Confusion, HandComputedCase) {
  // target:     0 0 1 1 2 255      prediction: 0 1 1 1 0 2
  ConfusionMatrix cm(3);
  cm.update(at::tensor({0, 0, 1, 1, 2, 255}, at::kLong).reshape({1, 2, 3}),
            at::tensor({0, 1, 1, 1, 0, 2}, at::kLong).reshape({1, 2, 3}));
  // rows target, columns prediction: [[1,1,0],[0,2,0],[1,0,0]]
  const auto m = cm.matrix();
  EXPECT_EQ(m[0][0].item<int64_t>(), 1);
  EXPECT_EQ(m[0][1].item<int64_t>(), 1);
  EXPECT_EQ(m[1][1].item<int64_t>(), 2);
  EXPECT_EQ(m[2][0].item<int64_t>(), 1);
  EXPECT_EQ(m.sum().item<int64_t>(), 5) << "the 255 pixel is ignored";
  const SegmentationScores s = cm.compute();
  EXPECT_DOUBLE_EQ(s.iou[0], 1.0 / 3.0);  // tp 1, row 2, col 2
  EXPECT_DOUBLE_EQ(s.iou[1], 2.0 / 3.0);  // tp 2, row 2, col 3
  EXPECT_DOUBLE_EQ(s.iou[2], 0.0);        // tp 0, row 1, col 0
  EXPECT_DOUBLE_EQ(s.mean_iou, (1.0 / 3.0 + 2.0 / 3.0 + 0.0) / 3.0);
  EXPECT_DOUBLE_EQ(s.pixel_accuracy, 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(s.class_accuracy[0], 0.5);
  EXPECT_EQ(s.pixels, 5);
  // Dice 2tp / (2tp + fp + fn), precision tp / col, recall tp / row; class 2 is never predicted: precision 0.
  EXPECT_EQ(s.dice, (std::vector<double>{0.5, 0.8, 0.0}));
  EXPECT_DOUBLE_EQ(s.precision[0], 0.5);
  EXPECT_DOUBLE_EQ(s.precision[1], 2.0 / 3.0);
  EXPECT_EQ(s.precision[2], 0.0);
  EXPECT_EQ(s.recall, (std::vector<double>{0.5, 1.0, 0.0}));
  EXPECT_EQ(s.confusion, (std::vector<std::vector<int64_t>>{{1, 1, 0}, {0, 2, 0}, {1, 0, 0}}));
  // Accumulates across updates; reset clears.
  cm.update(at::tensor({2}, at::kLong).reshape({1, 1, 1}), at::tensor({2}, at::kLong).reshape({1, 1, 1}));
  EXPECT_DOUBLE_EQ(cm.compute().iou[2], 0.5);
  cm.reset();
  EXPECT_EQ(cm.matrix().sum().item<int64_t>(), 0);
}

TEST(Confusion, AbsentClassIsNotCountedInTheMean) {
  ConfusionMatrix cm(4);
  // Class 2 is in neither target nor prediction; class 3 is predicted once but never in the target.
  cm.update(at::tensor({0, 1, 1}, at::kLong).reshape({1, 1, 3}), at::tensor({0, 1, 3}, at::kLong).reshape({1, 1, 3}));
  const auto s = cm.compute();
  for (const auto* scores : {&s.iou, &s.dice, &s.precision, &s.recall}) EXPECT_TRUE(std::isnan((*scores)[2]));
  EXPECT_DOUBLE_EQ(s.mean_iou, (1.0 + 0.5 + 0.0) / 3);
  EXPECT_EQ(s.recall[3], 0.0) << "predicted, never present: 0, as torchmetrics' zero_division";
  EXPECT_TRUE(std::isnan(s.class_accuracy[3])) << "class_accuracy keeps its NaN for a class not in the target";
  EXPECT_EQ(s.precision[3], 0.0);
}

// The device-side accumulator (no masked_select/bincount) against a plain loop over pixels, over several updates
// of different shapes with ignored (255), negative and too-large labels.
TEST(Confusion, MatchesAPixelLoopOverSeveralUpdates) {
  const int64_t C = 5;
  ConfusionMatrix cm(C);
  std::vector<int64_t> expected(C * C, 0);
  at::manual_seed(21);
  const std::vector<std::vector<int64_t>> shapes = {{2, 9, 13}, {1, 31, 7}, {3, 4, 4}};
  for (const auto& shape : shapes) {
    at::Tensor target = at::randint(-2, C + 3, shape, at::kLong);
    target.masked_fill_(at::randint(0, 4, shape, at::kLong) == 0, 255);
    const at::Tensor pred = at::randint(0, C, shape, at::kLong);
    cm.update(target, pred);
    const at::Tensor t = target.reshape(-1), p = pred.reshape(-1);
    const auto ta = t.accessor<int64_t, 1>();
    const auto pa = p.accessor<int64_t, 1>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (ta[i] >= 0 && ta[i] < C) ++expected[ta[i] * C + pa[i]];
    }
  }
  const at::Tensor want = at::tensor(expected, at::kLong).reshape({C, C});
  ASSERT_EQ(cm.matrix().sizes(), want.sizes());
  EXPECT_TRUE(at::equal(cm.matrix(), want));
  int64_t total = 0;
  for (int64_t v : expected) total += v;
  EXPECT_GT(total, 0);
  EXPECT_EQ(cm.compute().pixels, total) << "ignored and out-of-range pixels are not counted";

  // reduce works in place on the accumulator the matrix views (a stand-in "all-reduce" over two equal ranks).
  cm.reduce([](at::Tensor& t) { t.mul_(2); });
  EXPECT_TRUE(at::equal(cm.matrix(), want * 2));
  cm.reset();
  EXPECT_EQ(cm.matrix().sum().item<int64_t>(), 0);
  EXPECT_EQ(cm.matrix().sizes(), want.sizes());
}

TEST(Confusion, OutOfRangePredictionsAreNotCounted) {
  ConfusionMatrix cm(3);
  // Labelled pixels whose predictions fall outside [0,3) (a caller's bug) must not land in another class's cell.
  cm.update(at::tensor({0, 1, 2, 2}, at::kLong).reshape({1, 2, 2}),
            at::tensor({-1, 3, 7, 2}, at::kLong).reshape({1, 2, 2}));
  EXPECT_EQ(cm.matrix().sum().item<int64_t>(), 1);
  EXPECT_EQ(cm.matrix()[2][2].item<int64_t>(), 1);
}

// torchvision references/segmentation/utils.py ConfusionMatrix on the same random data.
TEST(Confusion, MatchesTorchvisionReference) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  at::manual_seed(3);
  at::Tensor target = at::randint(0, 4, {2, 17, 23}, at::kLong);
  target.masked_fill_(at::randint(0, 5, {2, 17, 23}, at::kLong) == 0, 255);
  const at::Tensor pred = at::randint(0, 4, {2, 17, 23}, at::kLong);
  model::save_state_dict({{"target", target}, {"pred", pred}}, dir / "data.pth");
  const std::string out = testing::run_python(R"(
import torch
d = torch.load(')" + (dir / "data.pth").string() +
                                              R"(')
n = 4
a, b = d['target'].flatten(), d['pred'].flatten()
k = (a >= 0) & (a < n)
inds = n * a[k].to(torch.int64) + b[k]
mat = torch.bincount(inds, minlength=n ** 2).reshape(n, n)
h = mat.float()
acc_global = torch.diag(h).sum() / h.sum()
iu = torch.diag(h) / (h.sum(1) + h.sum(0) - torch.diag(h))
print(' '.join('%.6f' % v for v in iu.tolist()), '%.6f' % iu.mean().item(), '%.6f' % acc_global.item())
)");
  ConfusionMatrix cm(4);
  cm.update(target, pred);
  const auto s = cm.compute();
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%.6f %.6f %.6f %.6f %.6f %.6f\n", s.iou[0], s.iou[1], s.iou[2], s.iou[3], s.mean_iou,
                s.pixel_accuracy);
  EXPECT_EQ(out, buf);
}

// torchmetrics' MulticlassJaccardIndex, F1Score, Precision and Recall (average=None and "macro", ignore_index=255) on
// random predictions with ignored pixels, a class in neither target nor prediction (4), one only predicted (3), one
// never predicted (2).
TEST(Confusion, MatchesTorchmetrics) {
  PETSEG_REQUIRE_PYTHON_MODULE("torchmetrics");
  testing::TempDir dir;
  at::manual_seed(9);
  const int64_t C = 5;
  at::Tensor target = at::randint(0, 3, {3, 19, 21}, at::kLong);
  target.masked_fill_(at::randint(0, 5, target.sizes(), at::kLong) == 0, 255);
  at::Tensor pred = target.clamp_max(3).masked_fill(at::randint(0, 3, target.sizes(), at::kLong) == 0, 0);
  pred.masked_fill_(at::randint(0, 4, target.sizes(), at::kLong) == 0, 1);
  pred.masked_fill_(pred == 2, 3);
  model::save_state_dict({{"target", target}, {"pred", pred}, {"num_classes", at::tensor(C, at::kLong)}},
                         dir / "data.pth");
  testing::run_python_script("metrics_reference.py", {(dir / "data.pth").string(), (dir / "reference.pth").string()});
  std::map<std::string, at::Tensor> ref;
  for (auto& [k, v] : model::read_state_dict(dir / "reference.pth")) ref[k] = v;
  ConfusionMatrix cm(C);
  cm.update(target, pred);
  const SegmentationScores s = cm.compute();
  const std::map<std::string, const std::vector<double>*> ours = {
      {"iou", &s.iou}, {"dice", &s.dice}, {"precision", &s.precision}, {"recall", &s.recall}};
  for (const auto& [name, values] : ours) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(ref.count(name) && ref.count("m" + name));
    const at::Tensor r = ref.at(name);
    ASSERT_EQ(r.numel(), C);
    double sum = 0;
    int defined = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double v = (*values)[c], want = r[c].item<double>();
      if (c == 4) {
        EXPECT_TRUE(std::isnan(v)) << "absent from both: ours NaN";
        EXPECT_EQ(want, 0.0) << "absent from both: torchmetrics 0";
        continue;
      }
      EXPECT_NEAR(v, want, 1e-6) << "class " << c;
      sum += v;
      ++defined;
    }
    // The mean over defined classes is torchmetrics' macro average.
    EXPECT_NEAR(sum / defined, ref.at("m" + name).item<double>(), 1e-6);
  }
  EXPECT_EQ(s.precision[2], 0.0);
  EXPECT_EQ(s.recall[3], 0.0);
  EXPECT_NEAR(s.mean_iou, ref.at("miou").item<double>(), 1e-6);
}

TEST(Confusion, JsonForm) {
  ConfusionMatrix cm(3);
  cm.update(at::tensor({0, 0, 1, 255}, at::kLong).reshape({1, 2, 2}),
            at::tensor({0, 1, 1, 0}, at::kLong).reshape({1, 2, 2}));
  const nlohmann::json j = scores_json(cm.compute(), {"pet", "background", "border"});
  const nlohmann::json back = nlohmann::json::parse(j.dump());
  EXPECT_EQ(back["classes"], (std::vector<std::string>{"pet", "background", "border"}));
  EXPECT_EQ(back["confusion_matrix"], (std::vector<std::vector<int64_t>>{{1, 1, 0}, {0, 1, 0}, {0, 0, 0}}));
  EXPECT_DOUBLE_EQ(back["miou"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(back["pixel_accuracy"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(back["iou"][1].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(back["dice"][0].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(back["precision"][1].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(back["recall"][0].get<double>(), 0.5);
  for (const char* key : {"iou", "dice", "precision", "recall"}) {
    EXPECT_TRUE(back[key][2].is_null()) << key << ": the absent class is null";
  }
  EXPECT_FALSE(scores_json(cm.compute(), {}).contains("classes"));
}

}  // namespace
}  // namespace petseg::metrics
