// report: metrics.jsonl's records round-trip with the per-class Dice, precision, recall and the confusion matrix and
// still read the lines of petseg before them; TensorBoard (its own reader) gets a tag per metric and class; the report
// draws the last epoch's confusion matrix, rows normalized, class names on both axes, with its colour scale.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "report/board.h"
#include "report/epoch_record.h"
#include "report/report.h"
#include "test_util.h"

namespace petseg::report {
namespace {

namespace fs = std::filesystem;

EpochRecord scored_epoch() {
  EpochRecord r;
  r.epoch = 2;
  r.step = 12;
  r.train_loss = 0.75;
  r.miou = 0.5;
  r.pixel_accuracy = 0.8;
  r.class_names = {"pet", "background", "border"};
  r.iou = {0.6, 0.9, NAN};
  r.class_accuracy = {0.7, 0.95, NAN};
  r.dice = {0.75, 0.947, NAN};
  r.precision = {0.8, 0.9, 0.0};
  r.recall = {0.7, 0.95, NAN};
  r.confusion = {{70, 20, 10}, {5, 190, 5}, {0, 0, 0}};
  r.seconds = 3;
  return r;
}

// NaN == NaN for the comparisons below (NaN is written as null and read back as NaN).
void expect_same(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) {
      EXPECT_TRUE(std::isnan(b[i])) << what << "[" << i << "]";
    } else {
      EXPECT_EQ(a[i], b[i]) << what << "[" << i << "]";
    }
  }
}

TEST(EpochRecord, RoundTripsThePerClassScoresAndTheConfusionMatrix) {
  const EpochRecord r = scored_epoch();
  const std::string line = to_json_line(r);
  const auto j = nlohmann::json::parse(line);
  for (const char* key : {"dice", "precision", "recall", "confusion_matrix"}) EXPECT_TRUE(j.contains(key)) << key;
  const EpochRecord back = epoch_record_from_json(line, "metrics.jsonl");
  expect_same(back.dice, r.dice, "dice");
  expect_same(back.precision, r.precision, "precision");
  expect_same(back.recall, r.recall, "recall");
  expect_same(back.iou, r.iou, "iou");
  EXPECT_EQ(back.confusion, r.confusion);
  EXPECT_EQ(to_json_line(back), line);
  EXPECT_EQ(history_from_json(history_to_json({r, r}), "history").at(1).confusion, r.confusion);
}

// A line as petseg wrote it before the per-class scores: read whole, the new fields empty.
TEST(EpochRecord, ReadsLinesWithoutTheNewKeys) {
  const std::string old =
      R"({"class_accuracy":[0.5,1.0,null],"class_names":["pet","background","border"],"epoch":1,"images_per_s":2.5,)"
      R"("iou":[0.25,0.75,null],"loss_scale":0.0,"lr":0.01,"miou":0.5,"pixel_accuracy":0.7,"ranks":1,"seconds":4.0,)"
      R"("skipped_steps":0,"step":3,"times":{"backward":1.0,"data":0.1,"eval":0.5,"forward":1.5,"h2d":0.0,)"
      R"("launch_times":false,"optimizer":0.2},"train_loss":0.9})";
  const EpochRecord r = epoch_record_from_json(old, "metrics.jsonl");
  EXPECT_EQ(r.epoch, 1);
  EXPECT_EQ(r.step, 3);
  EXPECT_EQ(r.miou, 0.5);
  expect_same(r.iou, {0.25, 0.75, NAN}, "iou");
  EXPECT_EQ(r.class_names.size(), 3u);
  EXPECT_TRUE(r.dice.empty());
  EXPECT_TRUE(r.precision.empty());
  EXPECT_TRUE(r.recall.empty());
  EXPECT_TRUE(r.confusion.empty());
}

TEST(RunBoard, ShowsEveryPerClassMetricUnderItsName) {
  PETSEG_REQUIRE_TENSORBOARD();
  testing::TempDir dir;
  const EpochRecord r = scored_epoch();
  {
    RunBoard board(dir / "tb", 1, "{}");
    board.log_epoch(r.step, r, nullptr);
  }
  const auto seen = nlohmann::json::parse(testing::read_tensorboard(dir / "tb"))["scalars"];
  const std::pair<const char*, const std::vector<double>*> metrics[] = {
      {"iou", &r.iou}, {"dice", &r.dice}, {"precision", &r.precision}, {"recall", &r.recall}};
  for (const auto& [metric, values] : metrics) {
    for (size_t c = 0; c < r.class_names.size(); ++c) {
      const std::string tag = std::string("epoch/") + metric + "/" + r.class_names[c];
      if (std::isnan((*values)[c])) {
        EXPECT_FALSE(seen.contains(tag)) << tag << ": an undefined score is left out, not drawn";
        continue;
      }
      ASSERT_TRUE(seen.contains(tag)) << tag << " missing: " << seen.dump();
      EXPECT_EQ(seen[tag][0][0], r.step) << tag;
      EXPECT_NEAR(seen[tag][0][1].get<double>(), (*values)[c], 1e-6) << tag;
    }
  }
}

TEST(Report, DrawsTheLastEpochsConfusionMatrix) {
  testing::TempDir dir;
  EpochRecord first = scored_epoch();
  first.confusion = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  const EpochRecord last = scored_epoch();
  const ReportHeader header{"deeplabv3_resnet50", "Oxford-IIIT Pet", {}};
  write_report(dir.path(), {first, last}, header, R"({"spec": {"epochs": 2}, "exec": {"name": "t"}})",
               dir / "none.png");
  const std::string html = read_text_file(dir / "report.html");
  const size_t at = html.find("<h2>Confusion matrix, last epoch</h2>");
  ASSERT_NE(at, std::string::npos);
  const std::string section = html.substr(at, html.find("<h2>", at + 4) - at);
  // Rows normalized: pet's 70 of 100 pixels, background's 190 of 200; the cells say so in their titles too.
  EXPECT_NE(section.find(">70</text>"), std::string::npos) << section;
  EXPECT_NE(section.find(">95</text>"), std::string::npos) << section;
  EXPECT_NE(section.find("<title>pet as background: 20 pixels</title>"), std::string::npos);
  EXPECT_NE(section.find("<title>border as border: 0 pixels</title>"), std::string::npos);
  EXPECT_NE(section.find("fill='#eee'"), std::string::npos) << "a class without pixels has no shares";
  for (const char* name : {"pet", "background", "border"}) {
    EXPECT_NE(section.find(std::string("class='a' text-anchor='end'>") + name + "<"), std::string::npos) << name;
    EXPECT_NE(section.find(std::string("rotate(-60)' class='a'>") + name + "<"), std::string::npos) << name;
  }
  EXPECT_NE(section.find("url(#cm-scale)"), std::string::npos) << "no colour scale";
  EXPECT_NE(section.find("<th>Dice %</th>"), std::string::npos);
  // Records from before the matrix: no section, and the rest of the report as before.
  EpochRecord old = scored_epoch();
  old.confusion.clear();
  write_report(dir.path(), {old}, header, R"({"spec": {}, "exec": {}})", dir / "none.png");
  const std::string plain = read_text_file(dir / "report.html");
  EXPECT_EQ(plain.find("Confusion matrix"), std::string::npos);
  EXPECT_NE(plain.find("Per-class IoU"), std::string::npos);
}

}  // namespace
}  // namespace petseg::report
