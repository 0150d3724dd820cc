// train: exact resume, atomic checkpoints that survive failed writes, refused corrupt/foreign checkpoints, the run
// folder's files (metrics, report, predictions), predict, and real learning on a tiny synthetic run.
#include "train/trainer.h"

#include <ATen/ops/equal.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "data/oxford_pets.h"
#include "data/synth.h"
#include "model/factory.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/predict.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;

class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    data::SynthOptions o;
    o.out = dir_->path() / "data";
    o.count = 24;
    o.seed = 5;
    o.min_side = 48;
    o.max_side = 90;
    data::synthesize(o);
    data::prepare_dataset(o.out, {});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TrainConfig tiny(const std::string& name) {
    TrainConfig c;
    c.data = dir_->path() / "data";
    c.runs_dir = dir_->path() / "runs";
    c.name = name;
    c.epochs = 2;
    c.batch_size = 2;
    c.image_size = 48;
    c.num_workers = 1;
    c.threads = 2;
    c.max_steps_per_epoch = 3;
    c.eval_max_batches = 2;
    c.vis_samples = 2;
    c.log_interval = 2;
    c.model.backbone = "resnet50";
    // Exact resume is a CPU property: CUDA's backward of bilinear upsampling is not deterministic (tests/gpu checks a
    // CUDA resume to a tolerance).
    c.device = "cpu";
    return c;
  }
  static std::map<std::string, at::Tensor> weights(const fs::path& checkpoint) {
    const CheckpointInfo info = read_checkpoint_info(checkpoint);
    model::ModelConfig mc = info.config.model;
    model::DeepLabV3 net = model::build_model(mc).model;
    load_checkpoint(checkpoint, *net, nullptr);
    std::map<std::string, at::Tensor> out;
    for (const auto& [k, v] : model::module_state_dict(*net)) out[k] = v;
    return out;
  }
  static testing::TempDir* dir_;
};
testing::TempDir* TrainTest::dir_ = nullptr;

TEST_F(TrainTest, ResumeGivesTheSameWeightsAsAnUninterruptedRun) {
  ASSERT_EQ(run_train(tiny("straight"), std::nullopt), 0);
  TrainConfig interrupted = tiny("interrupted");
  interrupted.stop_after_steps = 4;  // in the middle of the second epoch
  ASSERT_EQ(run_train(interrupted, std::nullopt), kExitInterrupted);
  const CheckpointInfo mid = read_checkpoint_info(dir_->path() / "runs/interrupted/last.pt");
  EXPECT_EQ(mid.state.epoch, 1);
  EXPECT_EQ(mid.state.epoch_step, 1);
  EXPECT_EQ(mid.state.global_step, 4);
  TrainConfig resume;  // a resume takes the saved config
  resume.epochs = 0;
  ASSERT_EQ(run_train(resume, dir_->path() / "runs/interrupted"), 0);
  const auto a = weights(dir_->path() / "runs/straight/last.pt");
  const auto b = weights(dir_->path() / "runs/interrupted/last.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(at::equal(v, b.at(k))) << k << " differs after resume";
  // The run folder holds what the report needs.
  const fs::path run = dir_->path() / "runs/straight";
  std::ifstream metrics(run / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("miou") && j.contains("times") && j["times"].contains("forward"));
  }
  EXPECT_EQ(lines, 2);
  EXPECT_TRUE(fs::exists(run / "best.pt"));
  EXPECT_TRUE(fs::exists(run / "predictions/epoch_2.png"));
  const std::string html = read_text_file(run / "report.html");
  for (const char* needle :
       {"training loss", "<svg", "<polyline", "data:image/png;base64,", "Per-class IoU", "backbone"}) {
    EXPECT_NE(html.find(needle), std::string::npos) << needle;
  }
  EXPECT_EQ(html.find("http"), std::string::npos) << "the report must not reach the network";
}

// fp16 autocast trains through the loss scaler (on the CPU here, as PyTorch allows), and a resume continues with
// the saved scale: the same weights as an uninterrupted run.
TEST_F(TrainTest, Fp16TrainsWithLossScalingAndResumesExactly) {
  TrainConfig straight = tiny("fp16");
  straight.amp = "fp16";
  ASSERT_EQ(run_train(straight, std::nullopt), 0);
  // From scratch, the first steps at scale 2^16 overflow in fp16: skipped and backed off, as in Python.
  const CheckpointInfo done = read_checkpoint_info(dir_->path() / "runs/fp16/last.pt");
  EXPECT_GT(done.state.loss_scale, 0);
  EXPECT_LE(done.state.loss_scale, 65536.0);
  std::ifstream metrics(dir_->path() / "runs/fp16/metrics.jsonl");
  int64_t skipped = 0;
  double last_scale = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(std::isfinite(j["train_loss"].get<double>()));
    skipped += j["skipped_steps"].get<int64_t>();
    last_scale = j["loss_scale"];
  }
  EXPECT_EQ(last_scale, done.state.loss_scale);
  // Every skip halves the scale and nothing grows within 2000 steps: the scale tells how many were skipped.
  EXPECT_EQ(65536.0 / std::pow(2.0, double(skipped)), done.state.loss_scale);
  EXPECT_LT(skipped, done.state.global_step) << "every step was skipped: nothing trained";
  TrainConfig interrupted = tiny("fp16-interrupted");
  interrupted.amp = "fp16";
  interrupted.stop_after_steps = 4;
  ASSERT_EQ(run_train(interrupted, std::nullopt), kExitInterrupted);
  TrainConfig resume;
  resume.epochs = 0;
  ASSERT_EQ(run_train(resume, dir_->path() / "runs/fp16-interrupted"), 0);
  const auto a = weights(dir_->path() / "runs/fp16/last.pt");
  const auto b = weights(dir_->path() / "runs/fp16-interrupted/last.pt");
  for (const auto& [k, v] : a) EXPECT_TRUE(at::equal(v, b.at(k))) << k << " differs after an fp16 resume";
}

// --resume auto (what a job restarted by torchrun runs again): starts the run when its folder holds no checkpoint,
// continues it when the checkpoint has the same configuration, refuses another configuration.
TEST_F(TrainTest, ResumeAutoStartsContinuesOrRefuses) {
  TrainConfig c = tiny("auto");
  c.stop_after_steps = 4;
  ASSERT_EQ(run_train(c, std::nullopt, /*resume_auto=*/true), kExitInterrupted);  // a fresh start, killed mid-run
  c.stop_after_steps = 0;
  ASSERT_EQ(run_train(c, std::nullopt, /*resume_auto=*/true), 0);  // the restart continues it
  std::ifstream metrics(dir_->path() / "runs/auto/metrics.jsonl");
  std::vector<int> epochs;
  for (std::string line; std::getline(metrics, line);) epochs.push_back(nlohmann::json::parse(line)["epoch"]);
  EXPECT_EQ(epochs, (std::vector<int>{1, 2}));
  EXPECT_EQ(read_checkpoint_info(dir_->path() / "runs/auto/last.pt").state.global_step, 6);
  TrainConfig other = tiny("auto");
  other.lr = 0.5;
  try {
    run_train(other, std::nullopt, /*resume_auto=*/true);
    FAIL() << "a checkpoint of another configuration was continued";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another configuration (lr"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, ARunFolderIsNeverOverwritten) {
  ASSERT_EQ(run_train(tiny("once"), std::nullopt), 0);
  try {
    run_train(tiny("once"), std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, FailedCheckpointWriteKeepsThePreviousOne) {
  TrainConfig c = tiny("atomic");
  c.epochs = 1;
  ASSERT_EQ(run_train(c, std::nullopt), 0);
  const fs::path last = dir_->path() / "runs/atomic/last.pt";
  const auto before = weights(last);
  // A kill in the middle of a write leaves a partial temporary file: the checkpoint itself is untouched.
  {
    const auto bytes = read_file(last);
    write_file_atomic(last.string() + ".tmp", bytes.data(), bytes.size() / 3);
  }
  EXPECT_EQ(read_checkpoint_info(last).state.epoch, 1);
  // A full disk (file size limit) while saving: a clear error, and the old checkpoint is intact.
  model::DeepLabV3 net = model::build_model(read_checkpoint_info(last).config.model).model;
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1));
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit small = old;
  small.rlim_cur = 1 << 20;
  setrlimit(RLIMIT_FSIZE, &small);
  std::string error;
  try {
    save_checkpoint(last, *net, opt, TrainState{}, c);
  } catch (const Error& e) {
    error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  EXPECT_NE(error.find("previous checkpoint is intact"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(last.string() + ".tmp"));
  const auto after = weights(last);
  for (const auto& [k, v] : before) EXPECT_TRUE(at::equal(v, after.at(k))) << k;
}

TEST_F(TrainTest, CorruptOrForeignCheckpointsAreRefused) {
  TrainConfig c = tiny("corrupt");
  c.epochs = 1;
  ASSERT_EQ(run_train(c, std::nullopt), 0);
  const fs::path last = dir_->path() / "runs/corrupt/last.pt";
  const auto bytes = read_file(last);
  const fs::path cut = dir_->path() / "cut.pt";
  write_file_atomic(cut, bytes.data(), bytes.size() / 2);
  try {
    read_checkpoint_info(cut);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.pt"), std::string::npos) << e.what();
  }
  const fs::path foreign = dir_->path() / "foreign.pth";
  model::save_state_dict({{"w", at::zeros({2})}}, foreign);
  try {
    read_checkpoint_info(foreign);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a petseg checkpoint"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, PredictWritesMasksAtTheInputSize) {
  TrainConfig c = tiny("predict");
  c.epochs = 1;
  ASSERT_EQ(run_train(c, std::nullopt), 0);
  const fs::path in = dir_->path() / "predict_in", out = dir_->path() / "predict_out";
  fs::create_directories(in);
  const data::PetDataset ds = data::PetDataset::open(dir_->path() / "data", data::Split::kTest);
  fs::copy_file(ds[0].image, in / "a.jpg");
  fs::copy_file(ds[1].image, in / "b.jpg");
  write_file_atomic(in / "broken.jpg", std::string("not an image"));
  for (bool script : {false, true}) {
    PredictOptions o{dir_->path() / "runs/predict/best.pt", in, out, script};
    const PredictSummary s = run_predict(o);
    EXPECT_EQ(s.written, 2);
    EXPECT_EQ(s.skipped, 1);
    for (const char* name : {"a", "b"}) {
      const auto img = read_file(in / (std::string(name) + ".jpg"));
      const auto mask_bytes = read_file(out / (std::string(name) + "_mask.png"));
      const image::ImageHeader h = image::read_header(img.data(), img.size());
      const image::Image mask = image::decode_mask(mask_bytes.data(), mask_bytes.size());
      EXPECT_EQ(mask.width, h.width);
      EXPECT_EQ(mask.height, h.height);
      EXPECT_EQ(data::find_invalid_trimap_value(mask), -1);
      EXPECT_TRUE(fs::exists(out / (std::string(name) + "_overlay.png")));
    }
  }
}

TEST_F(TrainTest, TrainsAndEvaluatesThroughTorchScript) {
  TrainConfig c = tiny("script");
  c.epochs = 1;
  c.torch_script = true;
  ASSERT_EQ(run_train(c, std::nullopt), 0);
  std::ifstream metrics(dir_->path() / "runs/script/metrics.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(line)["train_loss"].get<double>()));
  const EvalSummary eager = run_eval(dir_->path() / "runs/script/last.pt", {}, /*torch_script=*/false, 1);
  const EvalSummary script = run_eval(dir_->path() / "runs/script/last.pt", {}, /*torch_script=*/true, 1);
  EXPECT_NEAR(eager.scores.mean_iou, script.scores.mean_iou, 1e-3);
  EXPECT_GT(eager.images, 0);
}

TEST_F(TrainTest, DivergingLossStopsWithAClearMessage) {
  TrainConfig c = tiny("diverge");
  c.lr = 1e12;
  c.log_interval = 1;
  try {
    run_train(c, std::nullopt);
    FAIL() << "a loss of inf/nan went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the loss became"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, ProfileWritesAChromeTraceAndTopOps) {
  TrainConfig c = tiny("profile");
  c.epochs = 1;
  c.profile_steps = 2;
  ASSERT_EQ(run_train(c, std::nullopt), 0);
  const fs::path run = dir_->path() / "runs/profile";
  const auto trace = nlohmann::json::parse(read_text_file(run / "trace.json"));
  EXPECT_FALSE(trace.empty());
  EXPECT_NE(read_text_file(run / "profile_top_ops.txt").find("conv"), std::string::npos);
}

// Real learning in about a minute: loss falls and mIoU clearly beats predicting "background" everywhere.
TEST(Learning, LossFallsAndMiouBeatsTheAllBackgroundBaseline) {
  testing::TempDir dir;
  data::SynthOptions so;
  so.out = dir / "data";
  so.count = 160;
  so.seed = 2;
  data::synthesize(so);
  TrainConfig c;
  c.data = so.out;
  c.runs_dir = dir / "runs";
  c.name = "learn";
  c.epochs = 5;
  c.batch_size = 8;
  c.image_size = 64;
  c.lr = 0.02;
  c.log_interval = 5;
  c.model.backbone = "resnet50";
  ASSERT_EQ(run_train(c, std::nullopt), 0);
  std::vector<nlohmann::json> epochs;
  std::ifstream metrics(dir / "runs/learn/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) epochs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(epochs.size(), 5u);
  const double first_loss = epochs.front()["train_loss"], last_loss = epochs.back()["train_loss"];
  EXPECT_LT(last_loss, 0.95 * first_loss);
  // The baseline from the validation masks themselves: all-background gets IoU = background share for that
  // class and 0 for the others.
  data::LoaderOptions lo;
  lo.train = false;
  lo.shuffle = false;
  lo.image_size = 64;
  data::DataLoader val(std::make_shared<const data::PetDataset>(data::PetDataset::open(so.out, data::Split::kTest)),
                       lo);
  val.start_epoch(0);
  double background = 0, total = 0;
  while (auto b = val.next()) {
    background += b->masks.eq(1).sum().item<double>();
    total += b->masks.lt(3).sum().item<double>();
  }
  const double baseline = background / total / 3;
  double best = 0;
  for (const auto& e : epochs) best = std::max(best, e["miou"].get<double>());
  EXPECT_GT(best, baseline + 0.08) << "best mIoU " << best << ", all-background baseline " << baseline;
  EXPECT_GT(epochs.back()["iou"][0].get<double>(), 0.2) << "pet IoU";
}

}  // namespace
}  // namespace petseg::train
