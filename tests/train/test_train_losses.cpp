// train with --loss and --class-weights end to end: auto weights from the manifest's counts (printed, in the run
// folder and the checkpoint), a resume that trains with the checkpoint's weights and refuses another --loss by name,
// an unprepared set counted into the run folder (never into the data folder) to the manifest's weights, every loss
// under bf16 autocast, and the per-class scores in metrics.jsonl.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/class_weights.h"
#include "train/trainer.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class LossTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    data::SynthOptions o;
    o.out = dir_->path() / "data";
    o.count = 24;
    o.seed = 9;
    o.min_side = 48;
    o.max_side = 90;
    data::synthesize(o);
    data::prepare_dataset(o.out, {});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // A DeepLabV3-ResNet50 with its aux head (whose loss is the same criterion), 3 steps an epoch at 48 px.
  static TrainConfig tiny(const std::string& name, const std::string& loss, const std::string& weights) {
    TrainConfig c;
    c.spec.data = dir_->path() / "data";
    c.exec.runs_dir = dir_->path() / "runs";
    c.exec.name = name;
    c.spec.epochs = 2;
    c.spec.batch_size = 2;
    c.spec.image_size = 48;
    c.spec.max_steps = 3;
    c.spec.eval_batches = 2;
    c.spec.model.backbone = "resnet50";
    c.spec.model.aux_loss = true;
    c.spec.loss = loss;
    c.spec.class_weights = weights;
    c.exec.loader.num_workers = 1;
    c.exec.threads = 2;
    c.exec.vis_samples = 2;
    c.exec.log_interval = 2;
    c.exec.device = "cpu";
    return c;
  }
  // SegNet's weights from the prepared manifest's counts of the training split.
  static std::vector<double> manifest_weights() {
    const auto set = data::SegmentationDataset::open(dir_->path() / "data", data::Split::kTrainval);
    const data::ClassPixelCounts& counts = set.recorded_class_counts().value();
    return median_frequency_weights(counts.class_pixels, counts.image_pixels);
  }
  static testing::TempDir* dir_;
};
testing::TempDir* LossTrain::dir_ = nullptr;

// What run_train logs, one string.
struct Logged {
  std::string text;
  Logged() {
    set_log_sink([this](LogLevel, const std::string& m) { text += m + "\n"; });
  }
  ~Logged() { set_log_sink(nullptr); }
};

// Rewrites the class weights a checkpoint's meta record holds.
void set_checkpoint_weights(const fs::path& checkpoint, const std::vector<double>& weights) {
  model::StateDict records = model::read_state_dict(checkpoint);
  for (auto& [key, value] : records) {
    if (key != "meta") continue;
    const at::Tensor bytes = value.contiguous();
    json meta =
        json::parse(std::string(reinterpret_cast<const char*>(bytes.const_data_ptr<uint8_t>()), size_t(bytes.numel())));
    meta["class_weights"] = weights;
    const std::string text = meta.dump();
    value = at::empty({int64_t(text.size())}, at::kByte);
    std::memcpy(value.data_ptr<uint8_t>(), text.data(), text.size());
  }
  model::save_state_dict(records, checkpoint);
}

std::vector<json> metrics_lines(const fs::path& run) {
  std::vector<json> lines;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

TEST_F(LossTrain, AutoWeightsComeFromTheManifestAndAResumeTrainsWithTheSavedOnes) {
  const fs::path run = dir_->path() / "runs/weighted";
  TrainConfig c = tiny("weighted", "ce+dice", "auto");
  c.exec.stop_after = 4;  // step 1 of epoch 2
  const std::vector<double> expected = manifest_weights();
  {
    Logged log;
    ASSERT_EQ(run_train(c), kExitInterrupted);
    EXPECT_NE(log.text.find("loss: ce+dice, class weights of its cross-entropy (auto, median frequency over the "),
              std::string::npos)
        << log.text;
    EXPECT_NE(log.text.find("counted by petseg prepare): pet "), std::string::npos) << log.text;
    EXPECT_EQ(log.text.find("counting the classes"), std::string::npos) << "the manifest has the counts";
  }
  const json saved = json::parse(read_text_file(run / "class_weights.json"));
  EXPECT_EQ(saved["class_weights"], "auto");
  EXPECT_EQ(saved["source"], "manifest");
  EXPECT_EQ(saved["classes"], json({"pet", "background", "border"}));
  EXPECT_EQ(saved["weights"].get<std::vector<double>>(), expected);
  for (double w : expected) EXPECT_GT(w, 0);
  EXPECT_NE(expected[0], expected[1]) << "equal weights would prove nothing";
  const CheckpointInfo mid = read_checkpoint_info(run / "last.pt");
  EXPECT_EQ(mid.state.class_weights, expected);
  EXPECT_EQ(mid.config.spec.class_weights, "auto") << "the spec keeps what the user asked";
  EXPECT_EQ(mid.config.spec.loss, "ce+dice");

  TrainRequest dice{tiny("", "dice", "none"), {"loss"}, run};
  const std::string refused = testing::error_of([&] { run_train(dice); });
  EXPECT_NE(refused.find("--loss is \"dice\" on this command line and \"ce+dice\" in that run"), std::string::npos)
      << refused;

  // The resume trains with the checkpoint's weights, not a recount: here ones no count gives.
  const std::vector<double> planted = {2.0, 1.0, 0.5};
  set_checkpoint_weights(run / "last.pt", planted);
  TrainRequest resume{tiny("", "ce", "none"), {}, run};
  {
    Logged log;
    ASSERT_EQ(run_train(resume), 0);
    EXPECT_NE(log.text.find("(auto, the run's checkpoint): pet 2, background 1, border 0.5"), std::string::npos)
        << log.text;
  }
  const CheckpointInfo done = read_checkpoint_info(run / "last.pt");
  EXPECT_EQ(done.state.epoch, 2);
  EXPECT_EQ(done.state.class_weights, planted);
  EXPECT_EQ(json::parse(read_text_file(run / "class_weights.json"))["weights"].get<std::vector<double>>(), expected)
      << "a resume leaves the run folder's record of how the weights were made";
  const auto lines = metrics_lines(run);
  ASSERT_EQ(lines.size(), 2u);
  for (const json& line : lines) {
    EXPECT_TRUE(std::isfinite(line["train_loss"].get<double>()));
    for (const char* key : {"dice", "precision", "recall"}) EXPECT_EQ(line[key].size(), 3u) << key;
    ASSERT_EQ(line["confusion_matrix"].size(), 3u);
    int64_t pixels = 0;
    for (const auto& row : line["confusion_matrix"]) {
      for (const auto& v : row) pixels += v.get<int64_t>();
    }
    EXPECT_GT(pixels, 0);
  }
}

// A set without a manifest is counted when the run starts, into the run folder: the manifest's weights, and the data
// folder unchanged.
TEST_F(LossTrain, AnUnpreparedSetIsCountedIntoTheRunFolder) {
  const fs::path copy = dir_->path() / "unprepared";
  fs::copy(dir_->path() / "data", copy, fs::copy_options::recursive);
  fs::remove(copy / data::kManifestName);
  const uint64_t before = testing::tree_hash(copy);
  TrainConfig c = tiny("counted", "ce", "auto");
  c.spec.data = copy;
  c.spec.epochs = 1;
  c.spec.max_steps = 1;
  c.spec.eval_batches = 1;
  {
    Logged log;
    ASSERT_EQ(run_train(c), 0);
    EXPECT_NE(log.text.find("counting the classes of "), std::string::npos) << log.text;
    EXPECT_NE(log.text.find("counted now): pet "), std::string::npos) << log.text;
  }
  EXPECT_EQ(testing::tree_hash(copy), before) << "the data folder was written to";
  const json saved = json::parse(read_text_file(dir_->path() / "runs/counted/class_weights.json"));
  EXPECT_EQ(saved["source"], "counted");
  EXPECT_EQ(saved["weights"].get<std::vector<double>>(), manifest_weights());
  EXPECT_EQ(read_checkpoint_info(dir_->path() / "runs/counted/last.pt").state.class_weights, manifest_weights());
}

// Every loss trains under bf16 autocast (the loss itself in float32) to a finite loss, the aux head's included.
TEST_F(LossTrain, EveryLossTrainsUnderBf16Autocast) {
  for (const auto& [loss, weights] : std::vector<std::pair<std::string, std::string>>{
           {"ce", "1,2,3"}, {"dice", "none"}, {"focal", "none"}, {"ce+dice", "auto"}}) {
    TrainConfig c = tiny("bf16-" + loss, loss, weights);
    c.spec.amp = "bf16";
    c.spec.epochs = 1;
    c.spec.max_steps = 2;
    c.spec.eval_batches = 1;
    ASSERT_EQ(run_train(c), 0) << loss;
    const auto lines = metrics_lines(dir_->path() / "runs" / c.exec.name);
    ASSERT_EQ(lines.size(), 1u) << loss;
    EXPECT_TRUE(std::isfinite(lines[0]["train_loss"].get<double>())) << loss;
  }
  EXPECT_EQ(read_checkpoint_info(dir_->path() / "runs/bf16-ce/last.pt").state.class_weights,
            (std::vector<double>{1, 2, 3}));
  EXPECT_TRUE(read_checkpoint_info(dir_->path() / "runs/bf16-dice/last.pt").state.class_weights.empty());
}

// Wrong input fails before any training, naming the option.
TEST_F(LossTrain, BadLossOptionsAreRefusedNamingTheOption) {
  int runs = 0;
  const auto error = [&](const std::string& loss, const std::string& weights) {
    return testing::error_of([&] { run_train(tiny("bad-" + std::to_string(++runs), loss, weights)); });
  };
  EXPECT_NE(error("hinge", "none").find("--loss"), std::string::npos);
  EXPECT_NE(error("ce", "1,2").find("--class-weights \"1,2\" gives 2 weights; the data set has 3 classes"),
            std::string::npos);
  EXPECT_NE(error("ce", "1,-2,3").find("--class-weights \"1,-2,3\": weight 2 is negative"), std::string::npos);
  EXPECT_NE(error("dice", "auto").find("--class-weights auto weighs the cross-entropy term, and --loss dice has none"),
            std::string::npos);
}

}  // namespace
}  // namespace petseg::train
