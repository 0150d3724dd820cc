// train: exact resume, atomic checkpoints that survive failed writes, refused corrupt/foreign checkpoints, the run
// folder's files (metrics, report, predictions), predict, and real learning on a tiny synthetic run.
#include "train/trainer.h"

#include <ATen/ops/equal.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/oxford_pets.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "model/factory.h"
#include "model/weights.h"
#include "image/image_io.h"
#include "model/torch_archive.h"
#include "report/epoch_record.h"
#include "test_data.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/predict.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;

class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    data::SynthOptions o;
    o.count = 24;
    o.seed = 5;
    o.min_side = 48;
    o.max_side = 90;
    data_ = testing::shared_synthetic_set(o);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TrainConfig tiny(const std::string& name) {
    TrainConfig c;
    c.spec.data = data_;
    c.exec.runs_dir = dir_->path() / "runs";
    c.exec.name = name;
    c.spec.epochs = 2;
    c.spec.batch_size = 2;
    c.spec.image_size = 48;
    c.exec.loader.num_workers = 1;
    c.exec.threads = 2;
    c.spec.max_steps = 3;
    c.spec.eval_batches = 2;
    c.exec.vis_samples = 2;
    c.exec.log_interval = 2;
    // Nothing here is about a backbone: the smallest of torchvision's models (about 10x faster per step than a
    // DeepLabV3-ResNet50 at this size; tests/model holds the parity of every model).
    model::set_model_name(c.spec.model, "lraspp_mobilenet_v3_large");
    // Exact resume is a CPU property: CUDA's backward of bilinear upsampling is not deterministic (tests/gpu checks a
    // CUDA resume to a tolerance).
    c.exec.device = "cpu";
    return c;
  }
  static std::map<std::string, at::Tensor> weights(const fs::path& checkpoint) {
    const CheckpointInfo info = read_checkpoint_info(checkpoint);
    model::ModelConfig mc = info.config.spec.model;
    model::SegmentationModel net = model::build_segmentation_model(mc).model;
    load_checkpoint(checkpoint, *net, nullptr);
    std::map<std::string, at::Tensor> out;
    for (const auto& [k, v] : model::module_state_dict(*net)) out[k] = v;
    return out;
  }
  static testing::TempDir* dir_;
  static fs::path data_;  // shared, read only
};
testing::TempDir* TrainTest::dir_ = nullptr;
fs::path TrainTest::data_;

// A resume takes its execution options from its own command line: other workers, pinning, logging and a named device
// continue the run bit for bit, are in effect (config.json, the log) and are saved with the next checkpoint. Another
// thread count is in effect too, but not bit for bit: PyTorch's CPU kernels split their reductions by thread, and a
// randomly initialised ResNet's BatchNorm layers amplify the rounding (torchvision's DeepLabV3-ResNet50 in Python,
// batch 2: gradients at 1 and 2 threads differ by 0.7 % of their largest), so that resume follows to a tolerance.
TEST_F(TrainTest, ResumeWithOtherExecutionOptionsGivesTheSameWeightsAsAnUninterruptedRun) {
  ASSERT_EQ(run_train(tiny("straight")), 0);
  TrainConfig interrupted = tiny("interrupted");
  interrupted.exec.loader.num_workers = 0;
  interrupted.exec.loader.pin_memory = false;
  interrupted.exec.stop_after = 4;  // in the middle of the second epoch
  ASSERT_EQ(run_train(interrupted), kExitInterrupted);
  const CheckpointInfo mid = read_checkpoint_info(dir_->path() / "runs/interrupted/last.pt");
  EXPECT_EQ(mid.state.epoch, 1);
  EXPECT_EQ(mid.state.epoch_step, 1);
  EXPECT_EQ(mid.state.global_step, 4);
  EXPECT_EQ(mid.config.exec.loader.num_workers, 0);
  TrainRequest resume;  // no spec option named: the run's own
  resume.config.exec.device = "cpu";
  resume.config.exec.loader.num_workers = 3;
  resume.config.exec.loader.pin_memory = true;
  resume.config.exec.log_interval = 1;
  resume.resume_dir = dir_->path() / "runs/interrupted";
  std::vector<std::string> lines;
  set_log_sink([&](LogLevel, const std::string& m) { lines.push_back(m); });
  const int rc = run_train(resume);
  set_log_sink(nullptr);
  ASSERT_EQ(rc, 0);
  std::string said;
  for (const auto& line : lines) said += line + "\n";
  EXPECT_NE(said.find("this start changes how the run runs: "), std::string::npos) << said;
  EXPECT_NE(said.find("num_workers 0 -> 3"), std::string::npos) << said;
  EXPECT_NE(said.find("pin_memory false -> true"), std::string::npos) << said;
  const TrainConfig now = config_from_json(read_text_file(dir_->path() / "runs/interrupted/config.json"));
  EXPECT_EQ(now.exec.loader.num_workers, 3);
  EXPECT_EQ(now.exec.log_interval, 1);
  EXPECT_EQ(now.spec.epochs, 2) << "the spec is the run's";
  EXPECT_EQ(read_checkpoint_info(dir_->path() / "runs/interrupted/last.pt").config.exec.loader.num_workers, 3);
  const auto a = weights(dir_->path() / "runs/straight/last.pt");
  const auto b = weights(dir_->path() / "runs/interrupted/last.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(at::equal(v, b.at(k))) << k << " differs after resume";
  // One thread instead of two.
  interrupted.exec.name = "threads";
  ASSERT_EQ(run_train(interrupted), kExitInterrupted);
  resume.config.exec.threads = 1;
  resume.resume_dir = dir_->path() / "runs/threads";
  lines.clear();
  set_log_sink([&](LogLevel, const std::string& m) { lines.push_back(m); });
  const int rc1 = run_train(resume);
  set_log_sink(nullptr);
  ASSERT_EQ(rc1, 0);
  said.clear();
  for (const auto& line : lines) said += line + "\n";
  EXPECT_NE(said.find("threads 2 -> 1"), std::string::npos) << said;
  const auto t = weights(dir_->path() / "runs/threads/last.pt");
  for (const auto& [k, v] : a) {
    if (k.find("running_") != std::string::npos || k.find("num_batches") != std::string::npos) continue;  // statistics
    const double scale = 1.0 + v.abs().max().item<double>();
    EXPECT_LT((v - t.at(k)).abs().max().item<double>(), 2e-2 * scale) << k << " strays after a resume on 1 thread";
  }
  // The run folder holds what the report needs.
  const fs::path run = dir_->path() / "runs/straight";
  std::ifstream metrics(run / "metrics.jsonl");
  int n = 0;
  for (std::string line; std::getline(metrics, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("miou") && j.contains("times") && j["times"].contains("forward"));
  }
  EXPECT_EQ(n, 2);
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
  straight.spec.amp = "fp16";
  ASSERT_EQ(run_train(straight), 0);
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
  interrupted.spec.amp = "fp16";
  interrupted.exec.stop_after = 4;
  ASSERT_EQ(run_train(interrupted), kExitInterrupted);
  TrainRequest resume{tiny("")};  // the same execution options; the spec is the run's
  resume.resume_dir = dir_->path() / "runs/fp16-interrupted";
  ASSERT_EQ(run_train(resume), 0);
  const auto a = weights(dir_->path() / "runs/fp16/last.pt");
  const auto b = weights(dir_->path() / "runs/fp16-interrupted/last.pt");
  for (const auto& [k, v] : a) EXPECT_TRUE(at::equal(v, b.at(k))) << k << " differs after an fp16 resume";
}

// --resume auto (what a job restarted by torchrun runs again): starts the run when its folder holds no checkpoint,
// continues it when it holds one, even when the restart has other execution options.
TEST_F(TrainTest, ResumeAutoStartsThenContinuesWithOtherExecutionOptions) {
  TrainRequest r{tiny("auto"), {"lr", "batch_size", "image_size", "epochs"}, std::nullopt, /*resume_auto=*/true};
  r.config.exec.stop_after = 4;
  ASSERT_EQ(run_train(r), kExitInterrupted);  // a fresh start, killed mid-run
  r.config.exec.stop_after = 0;
  r.config.exec.loader.num_workers = 2;  // the restart lands on a node with other cores
  ASSERT_EQ(run_train(r), 0);            // and continues the run
  std::ifstream metrics(dir_->path() / "runs/auto/metrics.jsonl");
  std::vector<int> epochs;
  for (std::string line; std::getline(metrics, line);) epochs.push_back(nlohmann::json::parse(line)["epoch"]);
  EXPECT_EQ(epochs, (std::vector<int>{1, 2}));
  EXPECT_EQ(read_checkpoint_info(dir_->path() / "runs/auto/last.pt").state.global_step, 6);
}

// Both resume forms share one rule: a spec option the command line names must have the run's value (the message
// names it, both values and the way out); one not named takes the run's; --epochs may grow, not shrink.
TEST_F(TrainTest, BothResumeFormsRefuseAChangedSpecOptionByName) {
  TrainConfig c = tiny("spec");
  c.spec.epochs = 1;
  ASSERT_EQ(run_train(c), 0);
  const fs::path dir = dir_->path() / "runs/spec";
  TrainConfig changed = c;
  changed.spec.lr = 0.5;
  changed.spec.seed = 7;
  for (const bool automatic : {false, true}) {
    TrainRequest r{changed, {"lr", "seed"}, std::nullopt, automatic};
    if (!automatic) r.resume_dir = dir;
    try {
      run_train(r);
      FAIL() << "a changed --lr was continued (" << (automatic ? "--resume auto" : "--resume DIR") << ")";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--lr is 0.5 on this command line and 0.01 in that run"), std::string::npos) << m;
      EXPECT_NE(m.find("--seed is 7 on this command line and 0 in that run"), std::string::npos) << m;
      EXPECT_NE(m.find("--name"), std::string::npos) << m;
    }
  }
  TrainRequest fewer{c, {"epochs"}, dir};
  fewer.config.spec.epochs = 0;
  try {
    run_train(fewer);
    FAIL() << "--epochs shrank on a resume";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("may add epochs, not take them away"), std::string::npos) << e.what();
  }
  // Not named: the run's value, whatever this request's struct holds; --epochs grows the run by one epoch.
  TrainRequest more{changed, {"epochs"}, dir};
  more.config.spec.epochs = 2;
  ASSERT_EQ(run_train(more), 0);
  const CheckpointInfo done = read_checkpoint_info(dir / "last.pt");
  EXPECT_EQ(done.state.epoch, 2);
  EXPECT_EQ(done.config.spec.lr, 0.01);
  EXPECT_EQ(done.config.spec.seed, 0u);
}

// A checkpoint of the format before the split (one flat "config" object, under the keys of then, without the keys
// added since: the model's name, the layout and how it is read, the aux head's learning-rate multiplier, the loss)
// still loads and resumes: a DeepLabV3 on the pets with every head at one rate and cross-entropy, its optimizer state
// where it was.
TEST_F(TrainTest, ACheckpointWithTheFlatConfigOfBeforeStillResumes) {
  TrainConfig c = tiny("flat");
  model::set_model_name(c.spec.model, "deeplabv3_mobilenet_v3_large");  // an aux head, and a DeepLabV3 as then
  c.spec.model.aux_loss = true;
  c.exec.stop_after = 2;
  ASSERT_EQ(run_train(c), kExitInterrupted);
  const fs::path last = dir_->path() / "runs/flat/last.pt";
  model::StateDict records = model::read_state_dict(last);
  for (auto& [key, value] : records) {
    if (key != "meta") continue;
    const at::Tensor bytes = value.contiguous();
    auto meta = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(bytes.const_data_ptr<uint8_t>()),
                                                  size_t(bytes.numel())));
    nlohmann::json flat = meta["config"]["spec"];
    flat.update(meta["config"]["exec"]);
    for (const char* added :
         {"model", "layout", "val_fraction", "class_colors", "ignore_index", "aux_lr_mult", "loss", "class_weights"}) {
      ASSERT_TRUE(flat.contains(added)) << added;
      flat.erase(added);
    }
    // The keys that had other names then (each key is now its option's name).
    for (const auto& [now, then] : std::map<std::string, std::string>{{"max_steps", "max_steps_per_epoch"},
                                                                       {"eval_batches", "eval_max_batches"},
                                                                       {"profile", "profile_steps"},
                                                                       {"dist_timeout", "dist_timeout_s"},
                                                                       {"stop_after", "stop_after_steps"},
                                                                       {"mirror", "weights_mirror"}}) {
      ASSERT_TRUE(flat.contains(now)) << now;
      flat[then] = flat[now];
      flat.erase(now);
    }
    meta["config"] = flat;
    const std::string text = meta.dump();
    value = at::empty({int64_t(text.size())}, at::kByte);
    std::memcpy(value.data_ptr<uint8_t>(), text.data(), text.size());
  }
  model::save_state_dict(records, last);
  const CheckpointInfo info = read_checkpoint_info(last);
  EXPECT_EQ(info.config.spec.image_size, 48);
  EXPECT_EQ(info.config.spec.max_steps, tiny("").spec.max_steps) << "read under its older key";
  EXPECT_EQ(info.config.exec.loader.num_workers, 1);
  EXPECT_EQ(model::model_name(info.config.spec.model), "deeplabv3_mobilenet_v3_large");
  EXPECT_EQ(info.config.spec.layout, "oxford-pets");
  EXPECT_EQ(info.config.spec.aux_lr_mult, 1) << "runs before --aux-lr-mult trained every head at one rate";
  EXPECT_EQ(info.config.spec.loss, "ce") << "runs before --loss trained with cross-entropy";
  EXPECT_EQ(info.config.spec.class_weights, "none");
  TrainRequest resume{tiny("")};
  resume.resume_dir = last.parent_path();
  ASSERT_EQ(run_train(resume), 0);
  EXPECT_EQ(read_checkpoint_info(last).state.epoch, 2);
  EXPECT_EQ(read_checkpoint_info(last).config.spec.aux_lr_mult, 1);
}

// Both parts of the configuration survive a round trip through JSON, field by field.
// A configuration of the spec/exec era before --model (issue 20 to the key renames): "arch" and "backbone" apart,
// the older key names; it reads as today's, and is written back with today's keys.
TEST(Config, AnOlderSpecWithArchAndOldKeysReadsAsToday) {
  TrainConfig c;
  c.spec.model.arch = "lraspp";
  c.spec.model.backbone = "mobilenet_v3_large";
  c.spec.max_steps = 4;
  nlohmann::json j = nlohmann::json::parse(to_json(c));
  nlohmann::json& spec = j["spec"];
  spec.erase("model");
  spec["arch"] = "lraspp";
  spec["max_steps_per_epoch"] = spec["max_steps"];
  spec.erase("max_steps");
  const TrainConfig back = config_from_json(j.dump());
  EXPECT_EQ(back.spec.model.arch, "lraspp");
  EXPECT_EQ(back.spec.model.backbone, "mobilenet_v3_large");
  EXPECT_EQ(back.spec.max_steps, 4);
  EXPECT_TRUE(spec_differences(back.spec, c.spec).empty());
  const auto written = nlohmann::json::parse(to_json(back));
  EXPECT_EQ(written["spec"]["model"], "lraspp_mobilenet_v3_large");
  EXPECT_FALSE(written["spec"].contains("arch"));
}

TEST(Config, BothPartsRoundTripThroughJson) {
  TrainConfig c;
  c.spec.data = "/data/pets";
  c.spec.epochs = 7;
  c.spec.lr = 0.125;
  c.spec.seed = 1ull << 40;
  c.spec.model.weights = "coco";
  c.spec.max_steps = 9;
  c.exec.name = "x";
  c.exec.loader.num_workers = 5;
  c.exec.loader.prefetch_factor = 4;
  c.exec.loader.pin_memory = false;
  c.exec.backend = "gloo";
  c.exec.mirror = "http://127.0.0.1:1/";
  const TrainConfig back = config_from_json(to_json(c));
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_TRUE(spec_differences(back.spec, c.spec).empty());
  EXPECT_TRUE(exec_changes(back.exec, c.exec).empty());
  EXPECT_EQ(back.spec.seed, 1ull << 40);
  EXPECT_EQ(back.exec.loader.prefetch_factor, 4);
  // Every field of each part is in its table (and so saved): the JSON has one key per table entry, none twice.
  const auto j = nlohmann::json::parse(to_json(c));
  EXPECT_EQ(j["spec"].size(), spec_keys().size());
  EXPECT_EQ(j["exec"].size(), exec_keys().size());
  std::set<std::string> keys;
  for (const auto& k : spec_keys()) EXPECT_TRUE(keys.insert(k).second) << k;
  for (const auto& k : exec_keys()) EXPECT_TRUE(keys.insert(k).second) << k << " is in both parts";
  // Each spec field that differs is named with its option.
  TrainConfig other = c;
  other.spec.max_steps = 3;
  other.spec.model.backbone = "resnet50";
  EXPECT_EQ(describe(spec_differences(other.spec, c.spec), "here", "there"),
            "--model is \"deeplabv3_resnet50\" here and \"deeplabv3_resnet101\" there; --max-steps is 3 here and 9 "
            "there");
}

// TensorBoard (read by its own Python reader) shows the run as metrics.jsonl records it: each epoch's scalars at the
// epoch's last step, the log-interval scalars, the validation grid at its PNG's size, the configuration; a run killed
// and resumed continues the same curves, no step twice.
TEST_F(TrainTest, TensorBoardShowsTheRunAsMetricsJsonlRecordsIt) {
  PETSEG_REQUIRE_TENSORBOARD();
  TrainConfig c = tiny("tb");
  c.spec.epochs = 1;  // a finished run ...
  ASSERT_EQ(run_train(c), 0);
  TrainRequest more{tiny(""), {"epochs"}, dir_->path() / "runs/tb"};  // ... resumed at its end for another epoch ...
  more.config.exec.stop_after = 4;                               // ... killed at step 1 of epoch 2 ...
  ASSERT_EQ(run_train(more), kExitInterrupted);
  TrainRequest rest{tiny(""), {}, dir_->path() / "runs/tb"};  // ... and resumed mid-epoch to the end
  ASSERT_EQ(run_train(rest), 0);
  const auto seen = nlohmann::json::parse(testing::read_tensorboard(dir_->path() / "runs/tb/tb"));
  const auto& scalars = seen["scalars"];
  auto value_at = [&](const std::string& tag, int64_t step) -> std::optional<double> {
    if (!scalars.contains(tag)) return std::nullopt;
    for (const auto& point : scalars[tag]) {
      if (point[0] == step) return point[1].get<double>();
    }
    return std::nullopt;
  };
  auto expect_value = [&](const std::string& tag, int64_t step, double expected) {
    const auto got = value_at(tag, step);
    ASSERT_TRUE(got) << tag << " has no point at step " << step << ": " << scalars.dump();
    EXPECT_NEAR(*got, expected, 1e-6 * std::max(1.0, std::abs(expected))) << tag << " at step " << step;
  };
  std::ifstream metrics(dir_->path() / "runs/tb/metrics.jsonl");
  std::vector<int64_t> epoch_steps;
  for (std::string line; std::getline(metrics, line);) {
    const report::EpochRecord r = report::epoch_record_from_json(line, "metrics.jsonl");
    epoch_steps.push_back(r.step);
    expect_value("epoch/train_loss", r.step, r.train_loss);
    expect_value("epoch/miou", r.step, r.miou);
    expect_value("epoch/pixel_accuracy", r.step, r.pixel_accuracy);
    expect_value("epoch/images_per_s", r.step, r.images_per_s);
    expect_value("epoch/seconds/forward", r.step, r.times.forward);
    expect_value("epoch/data_wait_share", r.step, r.times.data / r.seconds);
    ASSERT_EQ(r.dice.size(), r.iou.size());
    ASSERT_EQ(r.precision.size(), r.iou.size());
    ASSERT_EQ(r.recall.size(), r.iou.size());
    for (size_t k = 0; k < r.iou.size(); ++k) {
      if (std::isfinite(r.iou[k])) expect_value("epoch/iou/" + r.class_names[k], r.step, r.iou[k]);
      if (std::isfinite(r.dice[k])) expect_value("epoch/dice/" + r.class_names[k], r.step, r.dice[k]);
      if (std::isfinite(r.precision[k])) expect_value("epoch/precision/" + r.class_names[k], r.step, r.precision[k]);
      if (std::isfinite(r.recall[k])) expect_value("epoch/recall/" + r.class_names[k], r.step, r.recall[k]);
    }
  }
  EXPECT_EQ(epoch_steps, (std::vector<int64_t>{3, 6}));
  for (const char* tag : {"epoch/miou", "train/loss", "train/lr", "train/images_per_s"}) {
    std::vector<int64_t> steps;
    for (const auto& point : scalars[tag]) steps.push_back(point[0]);
    ASSERT_FALSE(steps.empty()) << tag;
    for (size_t i = 1; i < steps.size(); ++i) EXPECT_LT(steps[i - 1], steps[i]) << tag << ": a step twice or back";
    EXPECT_EQ(steps.back(), 6) << tag;
  }
  EXPECT_TRUE(value_at("train/loss", 2)) << "the first start's log step";
  EXPECT_TRUE(value_at("train/loss", 6)) << "the resumed start's last step";
  EXPECT_FALSE(scalars.contains("train/loss_scale")) << "no loss scaler in an fp32 run";
  const auto bytes = read_file(dir_->path() / "runs/tb/predictions/epoch_2.png");
  const image::ImageHeader png = image::read_header(bytes.data(), bytes.size());
  ASSERT_EQ(seen["images"]["val/predictions"].size(), 2u);
  EXPECT_EQ(seen["images"]["val/predictions"][1], nlohmann::json::parse("[6, " + std::to_string(png.width) + ", " +
                                                                        std::to_string(png.height) + "]"));
  ASSERT_TRUE(seen["text"].contains("config"));
  EXPECT_NE(seen["text"]["config"][0][1].get<std::string>().find("\"image_size\": 48"), std::string::npos);
}

// An unusable event folder (here under a regular file) warns once and the run trains on; --no-tensorboard writes none.
TEST_F(TrainTest, TensorBoardFailuresNeverStopTraining) {
  TrainConfig c = tiny("tb-broken");
  c.spec.epochs = 1;
  write_file_atomic(dir_->path() / "not-a-folder", std::string("x"));
  c.exec.tensorboard_dir = dir_->path() / "not-a-folder" / "tb";
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, const std::string& m) {
    if (level == LogLevel::kWarning) warnings.push_back(m);
  });
  const int rc = run_train(c);
  set_log_sink(nullptr);
  ASSERT_EQ(rc, 0);
  const auto about_tb = std::count_if(warnings.begin(), warnings.end(),
                                     [](const std::string& w) { return w.find("not-a-folder") != std::string::npos; });
  EXPECT_EQ(about_tb, 1) << "one warning about the event folder";
  TrainConfig off = tiny("tb-off");
  off.spec.epochs = 1;
  off.exec.tensorboard = false;
  ASSERT_EQ(run_train(off), 0);
  EXPECT_FALSE(fs::exists(dir_->path() / "runs/tb-off/tb"));
}

TEST_F(TrainTest, ARunFolderIsNeverOverwritten) {
  ASSERT_EQ(run_train(tiny("once")), 0);
  try {
    run_train(tiny("once"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, FailedCheckpointWriteKeepsThePreviousOne) {
  TrainConfig c = tiny("atomic");
  c.spec.epochs = 1;
  ASSERT_EQ(run_train(c), 0);
  const fs::path last = dir_->path() / "runs/atomic/last.pt";
  const auto before = weights(last);
  // A kill in the middle of a write leaves a partial temporary file: the checkpoint itself is untouched.
  {
    const auto bytes = read_file(last);
    write_file_atomic(last.string() + ".tmp", bytes.data(), bytes.size() / 3);
  }
  EXPECT_EQ(read_checkpoint_info(last).state.epoch, 1);
  // A full disk (file size limit) while saving: a clear error, and the old checkpoint is intact.
  model::SegmentationModel net = model::build_segmentation_model(read_checkpoint_info(last).config.spec.model).model;
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
  c.spec.epochs = 1;
  ASSERT_EQ(run_train(c), 0);
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
  c.spec.epochs = 1;
  ASSERT_EQ(run_train(c), 0);
  const fs::path in = dir_->path() / "predict_in", out = dir_->path() / "predict_out";
  fs::create_directories(in);
  const data::SegmentationDataset ds = data::SegmentationDataset::open(data_, data::Split::kTest);
  fs::copy_file(ds[0].image, in / "a.jpg");
  fs::copy_file(ds[1].image, in / "b.jpg");
  write_file_atomic(in / "broken.jpg", std::string("not an image"));
  for (bool script : {false, true}) {
    PredictOptions o{dir_->path() / "runs/predict/best.pt", {in}, out, script};
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
  c.spec.epochs = 1;
  c.exec.torch_script = true;
  ASSERT_EQ(run_train(c), 0);
  std::ifstream metrics(dir_->path() / "runs/script/metrics.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(line)["train_loss"].get<double>()));
  EvalOptions eval;
  eval.checkpoint = dir_->path() / "runs/script/last.pt";
  eval.loader.num_workers = 1;
  const EvalSummary eager = run_eval(eval);
  eval.torch_script = true;
  const EvalSummary script = run_eval(eval);
  EXPECT_NEAR(eager.scores.mean_iou, script.scores.mean_iou, 1e-3);
  EXPECT_GT(eager.images, 0);
}

TEST_F(TrainTest, DivergingLossStopsWithAClearMessage) {
  TrainConfig c = tiny("diverge");
  c.spec.lr = 1e12;
  c.exec.log_interval = 1;
  try {
    run_train(c);
    FAIL() << "a loss of inf/nan went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the loss became"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, ProfileWritesAChromeTraceAndTopOps) {
  TrainConfig c = tiny("profile");
  c.spec.epochs = 1;
  c.exec.profile = 2;
  ASSERT_EQ(run_train(c), 0);
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
  c.spec.data = so.out;
  c.exec.runs_dir = dir / "runs";
  c.exec.name = "learn";
  c.spec.epochs = 5;
  c.spec.batch_size = 8;
  c.spec.image_size = 64;
  c.spec.lr = 0.02;
  c.exec.log_interval = 5;
  // The project's own model: LR-ASPP from scratch stays at all-background on this set at 64 px in 5 epochs.
  c.spec.model.backbone = "resnet50";
  ASSERT_EQ(run_train(c), 0);
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
  data::DataLoader val(std::make_shared<const data::SegmentationDataset>(data::SegmentationDataset::open(so.out, data::Split::kTest)),
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
