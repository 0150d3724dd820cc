// Beyond the pets: every registered model trains, evaluates (eager and TorchScript), predicts and resumes through
// petseg train on the synthetic pets; a Pascal VOC set with broken files and a plain-folders set with RGB masks and
// no split files train end to end with their own classes; the optimizer's groups carry torchvision's rates.
#include <ATen/ops/equal.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/check.h"
#include "core/fs.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "data/loader.h"
#include "data/voc.h"
#include "image/image_io.h"
#include "model/factory.h"
#include "test_data.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/predict.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<json> metrics_of(const fs::path& run) {
  std::vector<json> lines;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

class ModelsTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    for (const std::string layout : {"oxford-pets", "voc", "folders"}) {
      data::SynthOptions o;
      o.layout = layout;
      o.count = 16;
      o.seed = 3;
      o.min_side = 48;
      o.max_side = 80;
      o.junk = layout == "voc";  // broken files, left out by prepare
      o.rgb_masks = layout == "folders";
      sets_[layout] = testing::shared_synthetic_set(o);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TrainConfig tiny(const std::string& layout, const std::string& model, const std::string& name) {
    TrainConfig c;
    c.spec.data = sets_.at(layout);
    c.exec.runs_dir = dir_->path() / "runs";
    c.exec.name = name;
    c.spec.epochs = 1;
    c.spec.batch_size = 2;
    c.spec.image_size = 64;
    c.spec.max_steps = 2;
    c.spec.eval_batches = 2;
    c.exec.loader.num_workers = 1;
    c.exec.threads = 2;
    c.exec.vis_samples = 2;
    c.exec.log_interval = 1;
    c.exec.device = "cpu";
    c.exec.tensorboard = false;
    model::set_model_name(c.spec.model, model);
    c.spec.model.aux_loss = !model::find_model(model).aux_prefix.empty();
    return c;
  }
  static testing::TempDir* dir_;
  static std::map<std::string, fs::path> sets_;  // by layout; shared, read only
};
testing::TempDir* ModelsTrain::dir_ = nullptr;
std::map<std::string, fs::path> ModelsTrain::sets_;

class EveryModel : public ModelsTrain, public ::testing::WithParamInterface<std::string> {};

// One short run per model (bf16 autocast, its aux head where it has one), then eval eager and through TorchScript,
// predict, and a resume that adds an epoch.
TEST_P(EveryModel, TrainsEvaluatesPredictsAndResumes) {
  const std::string name = GetParam();
  TrainConfig c = tiny("oxford-pets", name, name);
  c.spec.amp = "bf16";
  ASSERT_EQ(run_train(c), 0);
  const fs::path run = dir_->path() / "runs" / name;
  const CheckpointInfo info = read_checkpoint_info(run / "last.pt");
  EXPECT_EQ(model::model_name(info.config.spec.model), name);
  EXPECT_EQ(info.config.spec.model.num_classes, 3);
  EXPECT_EQ(info.config.spec.layout, "oxford-pets") << "auto is saved as the layout it resolved to";
  const std::vector<json> metrics = metrics_of(run);
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_TRUE(std::isfinite(metrics[0]["train_loss"].get<double>()));
  EXPECT_EQ(metrics[0]["class_names"], json({"pet", "background", "border"}));

  EvalOptions eval;
  eval.checkpoint = run / "last.pt";
  eval.loader.num_workers = 0;
  const EvalSummary eager = run_eval(eval);
  eval.torch_script = true;
  const EvalSummary script = run_eval(eval);
  EXPECT_GT(eager.images, 0);
  EXPECT_NEAR(eager.scores.mean_iou, script.scores.mean_iou, 2e-2);  // bf16 autocast on both sides

  const fs::path in = dir_->path() / ("in_" + name), out = dir_->path() / ("out_" + name);
  fs::create_directories(in);
  const data::SegmentationDataset ds = data::SegmentationDataset::open(sets_.at("oxford-pets"), data::Split::kTest);
  fs::copy_file(ds[0].image, in / "a.jpg");
  EXPECT_EQ(run_predict({run / "best.pt", {in}, out, false}).written, 1);
  const auto mask_bytes = read_file(out / "a_mask.png");
  EXPECT_EQ(data::find_invalid_trimap_value(image::decode_mask(mask_bytes.data(), mask_bytes.size())), -1)
      << "the pets' predictions are written as trimap values";

  TrainRequest more{tiny("oxford-pets", name, name)};
  more.config.spec.epochs = 2;
  more.spec_given = {"epochs"};
  more.resume_dir = run;
  ASSERT_EQ(run_train(more), 0);
  EXPECT_EQ(metrics_of(run).size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Models, EveryModel, ::testing::ValuesIn(model::kModelChoices),
                         [](const auto& info) { return info.param; });

// Pascal VOC with broken files: prepare left them out, the run trains and validates on VOC's train and val lists,
// with its 21 classes by name; predict writes class indices; the report names the classes.
TEST_F(ModelsTrain, AVocSetTrainsEndToEnd) {
  TrainConfig c = tiny("voc", "lraspp_mobilenet_v3_large", "voc");
  ASSERT_EQ(run_train(c), 0);
  const fs::path run = dir_->path() / "runs/voc";
  const CheckpointInfo info = read_checkpoint_info(run / "last.pt");
  EXPECT_EQ(info.config.spec.model.num_classes, 21);
  EXPECT_EQ(info.config.spec.layout, "voc");
  const std::vector<json> metrics = metrics_of(run);
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0]["class_names"].get<std::vector<std::string>>(), data::voc_class_names());
  EXPECT_EQ(metrics[0]["iou"].size(), 21u);
  const std::string report = read_text_file(run / "report.html");
  EXPECT_NE(report.find("aeroplane"), std::string::npos);
  EXPECT_NE(report.find("Pascal VOC"), std::string::npos) << "the report says which data set it is";

  EvalOptions eval;
  eval.checkpoint = run / "last.pt";
  eval.loader.num_workers = 0;
  EXPECT_GT(run_eval(eval).images, 0);
  const fs::path in = dir_->path() / "voc_in", out = dir_->path() / "voc_out";
  fs::create_directories(in);
  const data::SegmentationDataset val = data::SegmentationDataset::open(sets_.at("voc"), data::Split::kTest);
  fs::copy_file(val[0].image, in / "x.jpg");
  EXPECT_EQ(run_predict({run / "last.pt", {in}, out, false}).written, 1);
  const auto bytes = read_file(out / "x_mask.png");
  const image::Image mask = image::decode_mask(bytes.data(), bytes.size());
  EXPECT_EQ(*std::max_element(mask.pixels.begin(), mask.pixels.end()) < 21, true) << "class indices";

  // The same folder read as another layout is refused on resume: what a run is stays as it started.
  TrainRequest other{tiny("voc", "lraspp_mobilenet_v3_large", "voc")};
  other.config.spec.layout = "folders";
  other.spec_given = {"layout"};
  other.resume_dir = run;
  EXPECT_NE(testing::error_of([&] { run_train(other); }).find("--layout is \"folders\""), std::string::npos);
}

// Plain folders with RGB masks read through the colours file and no split files: the validation share is drawn from
// the seed (the same for every start), the classes are the colours file's.
TEST_F(ModelsTrain, AFoldersSetWithRgbMasksTrainsEndToEnd) {
  TrainConfig c = tiny("folders", "deeplabv3_mobilenet_v3_large", "folders");
  c.spec.class_colors = sets_.at("folders") / data::kSynthClassColorsFile;
  c.spec.val_fraction = 0.25;
  ASSERT_EQ(run_train(c), 0);
  const fs::path run = dir_->path() / "runs/folders";
  const std::vector<json> metrics = metrics_of(run);
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0]["class_names"].get<std::vector<std::string>>(), data::synth_folder_classes());
  EXPECT_EQ(read_checkpoint_info(run / "last.pt").config.spec.model.num_classes,
            int64_t(data::synth_folder_classes().size()));
  // --num-classes that disagrees with the data set is an error naming both counts.
  TrainConfig wrong = tiny("folders", "deeplabv3_mobilenet_v3_large", "folders-wrong");
  wrong.spec.model.num_classes = 7;
  const std::string error = testing::error_of([&] { run_train(wrong); });
  EXPECT_NE(error.find("the model has 7 classes"), std::string::npos) << error;
}

// --ignore-index: the class it names reaches the loss and the metrics as the ignore index, in every batch.
TEST_F(ModelsTrain, IgnoreIndexTakesAClassOutOfTheTargets) {
  auto pixels_of = [&](int ignore_index) {
    RunSpec spec;
    spec.class_colors = sets_.at("folders") / data::kSynthClassColorsFile;
    spec.ignore_index = ignore_index;
    spec.image_size = 64;
    spec.batch_size = 4;
    auto dataset = std::make_shared<const data::SegmentationDataset>(
        data::SegmentationDataset::open(sets_.at("folders"), data::Split::kAll, dataset_options(spec)));
    data::WorkerOptions workers;
    workers.num_workers = 0;
    data::DataLoader loader(dataset, loader_options(spec, workers, /*train=*/false, /*to_cuda=*/false));
    std::map<int64_t, int64_t> count;
    loader.start_epoch(0);
    while (auto batch = loader.next()) {
      const at::Tensor m = batch->masks.flatten();
      for (int64_t v : {0, 1, 2, 255}) count[v] += (m == v).sum().item<int64_t>();
    }
    return count;
  };
  const auto plain = pixels_of(255), ignoring = pixels_of(1);
  ASSERT_GT(plain.at(1), 0) << "the synthetic set draws class 1";
  EXPECT_EQ(ignoring.at(1), 0);
  EXPECT_EQ(ignoring.at(255), plain.at(255) + plain.at(1));
  EXPECT_EQ(ignoring.at(0), plain.at(0));
}

// torchvision's params_to_optimize: the aux classifier at lr * --aux-lr-mult, the rest at lr; the poly schedule scales
// each group; a frozen backbone is left out; a run saved before the option trained every head at one rate.
TEST(ParamGroups, CarryTorchvisionsRatesThroughTheSchedule) {
  RunSpec spec;
  spec.lr = 0.02;
  model::set_model_name(spec.model, "deeplabv3_mobilenet_v3_large");
  spec.model.aux_loss = true;
  spec.model.num_classes = 3;
  model::SegmentationModel net = model::build_segmentation_architecture(spec.model);
  const std::vector<ParamGroup> groups = param_groups_of(net, spec);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[1].lr_mult, 10);
  std::set<const void*> aux;
  for (const auto& p : net->named_parameters()) {
    if (p.key().rfind("aux_classifier.", 0) == 0) aux.insert(p.value().unsafeGetTensorImpl());
  }
  EXPECT_EQ(groups[1].params.size(), aux.size());
  for (const auto& t : groups[1].params) EXPECT_TRUE(aux.count(t.unsafeGetTensorImpl()));
  EXPECT_EQ(groups[0].params.size() + groups[1].params.size(), net->parameters().size());
  const auto optimizer = make_optimizer(spec, groups);
  ASSERT_EQ(optimizer->param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[0].options().get_lr(), 0.02);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[1].options().get_lr(), 0.2);
  for (int64_t step : {0, 5, 9}) {
    const double lr = learning_rate(spec, step, 10);
    set_learning_rates(*optimizer, groups, lr);
    EXPECT_DOUBLE_EQ(optimizer->param_groups()[0].options().get_lr(), lr);
    EXPECT_DOUBLE_EQ(optimizer->param_groups()[1].options().get_lr(), 10 * lr);
  }
  EXPECT_DOUBLE_EQ(learning_rate(spec, 5, 10), 0.02 * std::pow(0.5, 0.9));
  // A frozen backbone trains nothing of its own; a model without an aux head has one group.
  net->freeze_backbone();
  const std::vector<ParamGroup> frozen = param_groups_of(net, spec);
  for (const auto& p : net->named_parameters()) {
    if (p.key().rfind("backbone.", 0) == 0) {
      EXPECT_FALSE(p.value().requires_grad());
    }
  }
  EXPECT_LT(frozen[0].params.size(), groups[0].params.size());
  EXPECT_EQ(make_optimizer(spec, frozen)->param_groups().size(), 2u);
  model::set_model_name(spec.model, "lraspp_mobilenet_v3_large");
  spec.model.aux_loss = false;
  model::SegmentationModel lraspp = model::build_segmentation_architecture(spec.model);
  EXPECT_EQ(make_optimizer(spec, param_groups_of(lraspp, spec))->param_groups().size(), 1u);
  // The spec of a run saved before --aux-lr-mult existed reads as one rate for all.
  json old = json::parse(spec_to_json(RunSpec{}));
  EXPECT_EQ(old["aux_lr_mult"], 10);
  old.erase("aux_lr_mult");
  EXPECT_EQ(spec_from_json(old.dump()).aux_lr_mult, 1);
}

}  // namespace
}  // namespace petseg::train
