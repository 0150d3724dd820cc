// report.html: what a reader sees — the run's model and data set, the curves on round ticks, the per-class table, the
// configuration as a table of options (not raw JSON), the classes' legend in the layout's colours.
#include "report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/fs.h"
#include "test_util.h"

namespace petseg::report {
namespace {

void expect_ticks(const std::vector<double>& got, const std::vector<double>& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-12) << i;
}

TEST(NiceTicks, AreRoundStepsCoveringTheRange) {
  expect_ticks(nice_ticks(0.734, 0.917, 5), {0.70, 0.75, 0.80, 0.85, 0.90, 0.95});
  expect_ticks(nice_ticks(0, 1, 5), {0, 0.2, 0.4, 0.6, 0.8, 1.0});
  expect_ticks(nice_ticks(3, 97, 5), {0, 20, 40, 60, 80, 100});
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{{0.0123, 0.0456}, {-3.3, 7.1}, {42, 42}}) {
    const std::vector<double> t = nice_ticks(lo, hi, 5);
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.front(), lo);
    EXPECT_GE(t.back(), hi);
    EXPECT_LE(t.size(), 7u);
    const double step = t[1] - t[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-9 || std::fabs(mantissa - 2) < 1e-9 || std::fabs(mantissa - 5) < 1e-9)
        << lo << ".." << hi << ": step " << step;
  }
}

TEST(OptionRows, NameEachValueByItsOption) {
  const std::string config =
      R"({"spec": {"batch_size": 8, "lr": 0.02, "weights": "", "aux_loss": true, "model": "fcn_resnet50"},
          "exec": {"num_workers": 2, "pin_memory": false}})";
  const auto rows = option_rows(config);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"--aux-loss", "on"}, {"--batch-size", "8"}, {"--lr", "0.02"},        {"--model", "fcn_resnet50"},
      {"--weights", "-"},   {"--num-workers", "2"}, {"--pin-memory", "off"}};
  EXPECT_EQ(rows, expected);
}

TEST(Report, ShowsTheRunAsAReaderWantsIt) {
  testing::TempDir dir;
  std::vector<EpochRecord> history(3);
  for (size_t i = 0; i < history.size(); ++i) {
    EpochRecord& e = history[i];
    e.epoch = int(i) + 1;
    e.train_loss = 0.9 - 0.07 * double(i);
    e.miou = 0.3 + 0.05 * double(i);
    e.pixel_accuracy = 0.7 + 0.02 * double(i);
    e.iou = {0.4, 0.7, 0.05};
    e.class_accuracy = {0.5, 0.8, 0.1};
    e.class_names = {"pet", "background", "border"};
    e.images_per_s = 4.5;
  }
  const ReportHeader header{"deeplabv3_resnet50", "Oxford-IIIT Pet", {{255, 140, 0}, {30, 90, 200}, {255, 230, 40}}};
  const std::string config =
      R"({"spec": {"batch_size": 8, "data": "", "image_size": 96}, "exec": {"name": "dry", "num_workers": 2}})";
  write_report(dir.path(), history, header, config, dir.path() / "no-grid.png");
  const std::string html = read_text_file(dir.path() / "report.html");
  EXPECT_NE(html.find("<h1>petseg &middot; deeplabv3_resnet50 on Oxford-IIIT Pet</h1>"), std::string::npos);
  EXPECT_NE(html.find("<td><code>--batch-size</code></td><td>8</td>"), std::string::npos);
  EXPECT_NE(html.find("<td><code>--num-workers</code></td><td>2</td>"), std::string::npos);
  EXPECT_EQ(html.find("{\"batch_size\""), std::string::npos) << "the configuration is raw JSON";
  EXPECT_NE(html.find("<td>border</td>"), std::string::npos);
  // Every value-axis label is a round number: at most two decimals for these ranges.
  const std::regex tick("text-anchor='end'>([^<]*)<");
  int ticks = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), tick); it != std::sregex_iterator(); ++it) {
    const std::string label = (*it)[1];
    EXPECT_TRUE(std::regex_match(label, std::regex("-?[0-9]+(\\.[0-9]{1,2})?"))) << label;
    ++ticks;
  }
  EXPECT_GE(ticks, 6);
}

}  // namespace
}  // namespace petseg::report
