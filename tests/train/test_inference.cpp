// train/inference: windows placed as mmsegmentation places them (hand-checked), sliding windows that give the whole
// image's logits for a model that sees no borders and a single window for an image smaller than the tile, whole,
// slide and test-time augmentation against mmsegmentation's own code (tests/python/inference_reference.py) for a model
// that does see borders, the resize rules, and each bad option named. End to end: eval --resize shorter against
// torchvision's reference evaluation, slide vs whole, eager vs TorchScript vs bf16, --native-resolution, TTA, --json,
// and predict --mode slide on an image larger than the tile.
#include "train/inference.h"

#include <ATen/ops/conv2d.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <torch/optim/sgd.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/fs.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "image/image_io.h"
#include "model/lraspp.h"
#include "model/random_weights.h"
#include "model/torch_archive.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/export.h"
#include "train/predict.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// A k x k convolution with zero padding: k = 1 sees no borders (every pixel's logits are its own pixel's), k = 3 does.
Forward convolution(const at::Tensor& weight, const at::Tensor& bias) {
  return [weight, bias](const at::Tensor& x) { return at::conv2d(x, weight, bias, 1, weight.size(-1) / 2); };
}

TEST(Windows, StartWhereMmsegmentationPutsThem) {
  // 1000 px, tile 512, stride 341: max(1000 - 512 + 340, 0) / 341 + 1 = 3 windows, at 0, 341 and 682, the last moved
  // back to 488 so that it ends at 1000.
  EXPECT_EQ(window_starts(1000, 512, 341), (std::vector<int>{0, 341, 488}));
  EXPECT_EQ(window_starts(512, 512, 341), (std::vector<int>{0}));        // one tile exactly
  EXPECT_EQ(window_starts(513, 512, 341), (std::vector<int>{0, 1}));     // a pixel more: a second window, at 1
  EXPECT_EQ(window_starts(300, 512, 341), (std::vector<int>{0}));        // shorter than the tile: one window
  EXPECT_EQ(window_starts(1024, 512, 512), (std::vector<int>{0, 512}));  // stride = tile: side by side
  EXPECT_EQ(window_starts(10, 4, 3), (std::vector<int>{0, 3, 6}));       // (10 - 4 + 2) / 3 + 1 = 3, the last fits
  EXPECT_EQ(window_starts(11, 4, 3), (std::vector<int>{0, 3, 6, 7}));    // (11 - 4 + 2) / 3 + 1 = 4: 9 -> 7
  // 700 x 1000: rows (700 - 512 + 340) / 341 + 1 = 2 at 0 and 188; columns 0, 341, 488; row by row.
  const std::vector<Window> w = slide_windows(700, 1000, 512, 341);
  ASSERT_EQ(w.size(), 6u);
  EXPECT_EQ((std::vector<int>{w[0].y0, w[0].y1, w[0].x0, w[0].x1}), (std::vector<int>{0, 512, 0, 512}));
  EXPECT_EQ((std::vector<int>{w[2].y0, w[2].y1, w[2].x0, w[2].x1}), (std::vector<int>{0, 512, 488, 1000}));
  EXPECT_EQ((std::vector<int>{w[4].y0, w[4].y1, w[4].x0, w[4].x1}), (std::vector<int>{188, 700, 341, 853}));
  // A 300 x 200 image and a 512 tile: the image itself.
  const std::vector<Window> one = slide_windows(300, 200, 512, 341);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ((std::vector<int>{one[0].y0, one[0].y1, one[0].x0, one[0].x1}), (std::vector<int>{0, 300, 0, 200}));
}

TEST(Slide, GivesTheWholeImagesLogitsForAModelThatSeesNoBorders) {
  at::manual_seed(3);
  const at::Tensor image = at::randn({1, 3, 70, 45});
  const Forward pointwise = convolution(at::randn({4, 3, 1, 1}), at::randn({4}));
  const at::Tensor whole = pointwise(image);
  for (const auto& [tile, stride] :
       std::vector<std::pair<int, int>>{{32, 20}, {32, 32}, {16, 1}, {64, 50}, {100, 60}}) {
    for (int batch : {1, 3}) {
      const at::Tensor slide = slide_logits(pointwise, image, tile, stride, batch);
      ASSERT_EQ(slide.sizes(), whole.sizes());
      EXPECT_LT(max_abs_diff(slide, whole), 1e-4) << "tile " << tile << ", stride " << stride << ", batch " << batch;
    }
  }
  // Every pixel's sum divided by exactly its number of windows: a model that answers 1 everywhere averages to 1.
  const Forward ones = [](const at::Tensor& x) { return at::ones({x.size(0), 2, x.size(2), x.size(3)}); };
  EXPECT_TRUE(at::equal(slide_logits(ones, image, 32, 20, 2), at::ones({1, 2, 70, 45})));
}

TEST(Slide, ATileLargerThanTheImageRunsTheWholeImageOnce) {
  configure_threads(0);
  model::InferenceModelOptions options;
  options.memory_format = "contiguous";
  model::InferenceModel model(testing::random_model("lraspp_mobilenet_v3_large"), at::kCPU, options);
  at::manual_seed(4);
  const at::Tensor image = at::randn({1, 3, 57, 75});
  int calls = 0;
  const Forward counted = [&](const at::Tensor& x) {
    ++calls;
    return model.forward(x);
  };
  c10::InferenceMode inference;
  const at::Tensor whole = model.forward(image);
  EXPECT_TRUE(at::equal(slide_logits(counted, image, 96, 64, 4), whole));
  EXPECT_EQ(calls, 1);
  // The same through the plans: --mode slide at the image's own size is --mode whole --resize none.
  InferencePlan slide, plain;
  slide.mode = WindowMode::kSlide;
  slide.tile = 80;
  slide.stride = 60;
  slide.resize = plain.resize = Resize::kNone;
  EXPECT_TRUE(at::equal(infer_scores(counted, image, slide, 57, 75), infer_scores(counted, image, plain, 57, 75)));
}

// One case of the reference: a 3 x 3 convolution (it sees borders, so windows differ from the whole image).
struct ReferenceCase {
  std::string name;
  int height, width;
  InferencePlan plan;
  int out_h, out_w;
};

std::vector<ReferenceCase> reference_cases() {
  auto plan = [](WindowMode mode, int tile, int stride, bool flip, std::vector<double> scales) {
    InferencePlan p;
    p.mode = mode;
    p.tile = tile;
    p.stride = stride;
    p.tile_batch = 3;
    p.tta.flip = flip;
    p.tta.scales = std::move(scales);
    return p;
  };
  const WindowMode whole = WindowMode::kWhole, slide = WindowMode::kSlide;
  return {
      {"whole", 37, 53, plan(whole, 512, 341, false, {1.0}), 37, 53},
      {"whole_to_other_size", 37, 53, plan(whole, 512, 341, false, {1.0}), 80, 61},
      {"slide", 70, 45, plan(slide, 32, 20, false, {1.0}), 70, 45},
      {"slide_tile_wider_than_image", 70, 45, plan(slide, 64, 40, false, {1.0}), 70, 45},
      {"flip", 37, 53, plan(whole, 512, 341, true, {1.0}), 37, 53},
      {"flip_scales", 37, 53, plan(whole, 512, 341, true, {0.75, 1.0, 1.25}), 37, 53},
      {"slide_flip_scales", 70, 45, plan(slide, 32, 20, true, {0.5, 1.0, 1.5}), 70, 45},
      {"one_scale", 37, 53, plan(whole, 512, 341, false, {0.6}), 37, 53},
  };
}

TEST(Inference, WholeSlideAndTtaMatchMmsegmentationsCode) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  at::manual_seed(5);
  const at::Tensor weight = at::randn({3, 3, 3, 3}) * 0.5, bias = at::randn({3});
  model::StateDict in;
  std::map<std::string, at::Tensor> ours;
  for (const ReferenceCase& c : reference_cases()) {
    const at::Tensor image = at::randn({1, 3, c.height, c.width});
    const auto put = [&](const std::string& key, const at::Tensor& t) { in.emplace_back(c.name + "." + key, t); };
    put("image", image);
    put("weight", weight);
    put("bias", bias);
    put("scales", at::tensor(c.plan.tta.scales, at::kDouble));
    put("flip", at::tensor(int64_t(c.plan.tta.flip)));
    put("slide", at::tensor(int64_t(c.plan.mode == WindowMode::kSlide)));
    put("tile", at::tensor(int64_t(c.plan.tile)));
    put("stride", at::tensor(int64_t(c.plan.stride)));
    put("out_h", at::tensor(int64_t(c.out_h)));
    put("out_w", at::tensor(int64_t(c.out_w)));
    ours[c.name] = infer_scores(convolution(weight, bias), image, c.plan, c.out_h, c.out_w);
  }
  model::save_state_dict(in, dir / "cases.pth");
  testing::run_python_script("inference_reference.py",
                             {(dir / "cases.pth").string(), (dir / "reference.pth").string()});
  std::map<std::string, at::Tensor> reference;
  for (auto& [k, v] : model::read_state_dict(dir / "reference.pth")) reference[k] = v;
  for (const ReferenceCase& c : reference_cases()) {
    const at::Tensor& ref = reference.at(c.name + ".scores");
    ASSERT_EQ(ours[c.name].sizes(), ref.sizes()) << c.name;
    EXPECT_LT(max_abs_diff(ours[c.name], ref), 2e-5) << c.name;
  }
  // The windows matter for this model: sliding is not the whole image here (else the slide cases would test nothing).
  const at::Tensor image = at::randn({1, 3, 70, 45});
  EXPECT_GT(max_abs_diff(slide_logits(convolution(weight, bias), image, 32, 20, 1), convolution(weight, bias)(image)),
            1e-2);
}

TEST(Resize, SquareShorterSideOrOwnSize) {
  EXPECT_EQ(resized_size(500, 375, Resize::kSquare, 256), std::make_pair(256, 256));
  // torchvision's resize of the shorter side truncates the longer: int(256 * 500 / 375) = int(341.3) = 341.
  EXPECT_EQ(resized_size(500, 375, Resize::kShorter, 256), std::make_pair(341, 256));
  EXPECT_EQ(resized_size(375, 500, Resize::kShorter, 520), std::make_pair(520, 693));
  EXPECT_EQ(resized_size(300, 300, Resize::kShorter, 520), std::make_pair(520, 520));
  EXPECT_EQ(resized_size(500, 375, Resize::kNone, 256), std::make_pair(500, 375));
}

TEST(InferencePlan, ResolvesAutoAndTheCheckpointsSize) {
  InferenceRequest r;
  const InferencePlan whole = make_plan(r, 256, "lraspp_mobilenet_v3_large", 16);
  EXPECT_EQ(whole.resize, Resize::kSquare);
  EXPECT_EQ(whole.image_size, 256);
  EXPECT_EQ(whole.tta.count(), 1u);
  r.mode = "slide";
  r.image_size = 320;
  r.tta = {"flip", "0.75", "1.0", "1.25"};
  const InferencePlan slide = make_plan(r, 256, "lraspp_mobilenet_v3_large", 16);
  EXPECT_EQ(slide.resize, Resize::kNone) << "slide runs at the image's own size unless --resize says otherwise";
  EXPECT_EQ(slide.image_size, 320);
  EXPECT_TRUE(slide.tta.flip);
  EXPECT_EQ(slide.tta.scales, (std::vector<double>{0.75, 1.0, 1.25}));
  EXPECT_EQ(slide.tta.count(), 6u);
  EXPECT_EQ(parse_tta({"flip"}).scales, std::vector<double>{1.0});
  EXPECT_EQ(model_options(InferenceRequest{}, "bf16", false).dtype, at::kBFloat16) << "auto follows the run's --amp";
  EXPECT_EQ(model_options(InferenceRequest{}, "off", false).dtype, at::kFloat);
}

TEST(InferencePlan, EachBadOptionIsNamed) {
  const auto error = [](const std::function<void(InferenceRequest&)>& change) {
    InferenceRequest r;
    change(r);
    return error_of([&] { make_plan(r, 256, "lraspp_mobilenet_v3_large", 16); });
  };
  const auto has = [](const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  };
  std::string e = error([](InferenceRequest& r) { r.tile = 8; });
  EXPECT_TRUE(has(e, "--tile 8") && has(e, "lraspp_mobilenet_v3_large's output stride (16") && has(e, ">= 16")) << e;
  e = error([](InferenceRequest& r) { r.stride = -1; });
  EXPECT_TRUE(has(e, "--stride -1") && has(e, "1 <= --stride <= --tile")) << e;
  InferenceRequest tile_only;  // --tile alone: the stride follows it (two thirds), never the 512 tile's 341
  tile_only.tile = 256;
  EXPECT_EQ(make_plan(tile_only, 256, "lraspp_mobilenet_v3_large", 16).stride, 170);
  EXPECT_EQ(make_plan(InferenceRequest{}, 256, "lraspp_mobilenet_v3_large", 16).stride, 341);
  e = error([](InferenceRequest& r) { r.stride = 600; });
  EXPECT_TRUE(has(e, "--stride 600 with --tile 512")) << e;
  for (const char* bad : {"abc", "0", "-1", "nan", "inf", "1.5x", ""}) {
    e = error([bad](InferenceRequest& r) { r.tta = {"flip", bad}; });
    EXPECT_TRUE(has(e, std::string("unknown --tta \"") + bad + "\"") && has(e, "valid: flip, and positive scales"))
        << e;
  }
  e = error([](InferenceRequest& r) { r.resize = "longer"; });
  EXPECT_TRUE(has(e, "--resize \"longer\"") && has(e, "square, shorter, none")) << e;
  e = error([](InferenceRequest& r) { r.mode = "tiles"; });
  EXPECT_TRUE(has(e, "--mode \"tiles\"") && has(e, "whole, slide")) << e;
  e = error([](InferenceRequest& r) { r.image_size = 8; });
  EXPECT_TRUE(has(e, "--image-size 8")) << e;
  InferenceRequest r;
  r.precision = "fp16";
  e = error_of([&] { model_options(r, "off", false); });
  EXPECT_TRUE(has(e, "--precision \"fp16\"") && has(e, "auto, fp32, bf16")) << e;
  r = InferenceRequest{};
  r.memory_format = "nhwc";
  e = error_of([&] { model_options(r, "off", false); });
  EXPECT_TRUE(has(e, "--memory-format \"nhwc\"")) << e;
}

// End to end on a synthetic pets set (sides 60 to 150 px) and a random LR-ASPP whose BatchNorm statistics are away
// from the identity, so that its classes vary over every image and each comparison below compares many decisions.
class InferenceRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    configure_threads(0);
    dir_ = new testing::TempDir();
    data::SynthOptions o;
    o.out = dir_->path() / "data";
    o.count = 12;
    o.seed = 9;
    o.min_side = 60;
    o.max_side = 150;
    data::synthesize(o);
    data::prepare_dataset(o.out, {});
    TrainConfig c;
    c.spec.data = o.out;
    c.spec.image_size = 64;
    c.spec.layout = "oxford-pets";
    model::set_model_name(c.spec.model, "lraspp_mobilenet_v3_large");
    c.spec.model.num_classes = 3;
    at::manual_seed(1);
    model::SegmentationModel net = model::build_segmentation_architecture(c.spec.model);
    testing::randomize_statistics(*net);
    net->eval();
    center_logits(*net, o.out);
    torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(0.01));
    save_checkpoint(checkpoint(), *net, optimizer, TrainState{}, c);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path checkpoint() { return dir_->path() / "random.pt"; }
  // A random network's logits barely vary over an image (their spatial spread is ~1 % of the offsets between the
  // classes): one class would win everywhere. Shifting the last bias by the mean logits over the test images lets
  // each class win somewhere.
  static void center_logits(model::SegmentationModelImpl& net, const fs::path& data) {
    torch::NoGradGuard no_grad;
    const data::SegmentationDataset ds = data::SegmentationDataset::open(data, data::Split::kTest);
    at::Tensor sum = at::zeros({3});
    InferencePlan plan;
    plan.resize = Resize::kShorter;
    plan.image_size = 72;
    for (size_t i = 0; i < ds.size(); ++i) {
      const auto bytes = read_file(ds[i].image);
      sum += net.forward(input_tensor(image::decode_rgb(bytes.data(), bytes.size()), plan, false)).out.mean({0, 2, 3});
    }
    auto* lraspp = dynamic_cast<model::LRASPPImpl*>(&net);
    ASSERT_NE(lraspp, nullptr);
    lraspp->classifier->low_classifier->bias.sub_(sum / double(ds.size()));
  }
  static EvalSummary eval(const std::function<void(EvalOptions&)>& change) {
    EvalOptions o;
    o.checkpoint = checkpoint();
    o.loader.num_workers = 2;
    o.inference.memory_format = "contiguous";  // the same kernels in every run compared
    change(o);
    return run_eval(o);
  }
  static testing::TempDir* dir_;
};
testing::TempDir* InferenceRun::dir_ = nullptr;

const std::vector<std::vector<int64_t>>& confusion(const EvalSummary& s) { return s.scores.confusion; }

// The fraction of pixels two confusion matrices put in different cells (at most; rows are targets).
double disagreement(const EvalSummary& a, const EvalSummary& b) {
  double differ = 0, total = 0;
  for (size_t i = 0; i < a.scores.confusion.size(); ++i) {
    for (size_t j = 0; j < a.scores.confusion[i].size(); ++j) {
      differ += std::abs(double(a.scores.confusion[i][j] - b.scores.confusion[i][j]));
      total += double(a.scores.confusion[i][j]);
    }
  }
  return differ / 2 / std::max(total, 1.0);
}

TEST_F(InferenceRun, ShorterSideMatchesTorchvisionsReferenceEvaluation) {
  PETSEG_REQUIRE_PYTHON();
  const EvalSummary ours = eval([](EvalOptions& o) {
    o.inference.resize = "shorter";
    o.inference.image_size = 72;
  });
  ExportRequest e;
  e.checkpoint = checkpoint();
  e.format = "state-dict";
  e.out = dir_->path() / "random.pth";
  e.force = true;
  run_export(e);
  const nlohmann::json ref = nlohmann::json::parse(testing::run_python_script(
      "torchvision_eval_reference.py",
      {"--data", (dir_->path() / "data").string(), "--weights", e.out.string(), "--model", "lraspp_mobilenet_v3_large",
       "--num-classes", "3", "--base-size", "72", "--threads", "2"}));
  EXPECT_EQ(ref["images"].get<int64_t>(), ours.images);
  int64_t differ = 0, total = 0;
  std::vector<int64_t> predicted(3, 0);
  for (size_t i = 0; i < 3; ++i) {
    for (size_t j = 0; j < 3; ++j) {
      const int64_t theirs = ref["confusion_matrix"][i][j].get<int64_t>();
      differ += std::abs(theirs - ours.scores.confusion[i][j]);
      total += theirs;
      predicted[j] += ours.scores.confusion[i][j];
    }
  }
  for (size_t j = 0; j < 3; ++j) {
    EXPECT_GT(double(predicted[j]), 0.05 * double(total)) << "class " << j << " is (almost) never predicted";
  }
  EXPECT_EQ(total, ours.scores.pixels) << "the same targets, resized the same way, at the same size";
  std::cout << "[ eval ] --resize shorter 72: petseg mIoU " << 100 * ours.scores.mean_iou << " %, torchvision's "
            << "reference " << 100 * ref["miou"].get<double>() << " %, " << differ / 2 << " of " << total
            << " pixels in another cell\n";
  EXPECT_NEAR(100 * ours.scores.mean_iou, 100 * ref["miou"].get<double>(), 0.25);
  EXPECT_LT(double(differ) / 2 / double(total), 0.005);
}

TEST_F(InferenceRun, SlideWithATileLargerThanEveryImageIsTheWholeImage) {
  const EvalSummary whole = eval([](EvalOptions& o) { o.inference.resize = "none"; });
  const EvalSummary slide = eval([](EvalOptions& o) {
    o.inference.mode = "slide";
    o.inference.tile = 160;
    o.inference.stride = 100;
  });
  EXPECT_EQ(confusion(slide), confusion(whole));
  // Smaller tiles see less context: other decisions, the same pixels scored.
  const EvalSummary tiles = eval([](EvalOptions& o) {
    o.inference.mode = "slide";
    o.inference.tile = 48;
    o.inference.stride = 32;
  });
  EXPECT_EQ(tiles.scores.pixels, whole.scores.pixels);
  EXPECT_GT(disagreement(tiles, whole), 0.0);
}

TEST_F(InferenceRun, EagerAndTorchScriptFoldedOrBf16Agree) {
  const auto shorter = [](EvalOptions& o) {
    o.inference.resize = "shorter";
    o.inference.image_size = 80;
  };
  const EvalSummary eager = eval(shorter);
  const EvalSummary script = eval([&](EvalOptions& o) {
    shorter(o);
    o.torch_script = true;
  });
  EXPECT_LT(disagreement(eager, script), 1e-3);
  const EvalSummary bf16 = eval([&](EvalOptions& o) {
    shorter(o);
    o.inference.precision = "bf16";
  });
  EXPECT_LT(disagreement(eager, bf16), 0.05);
  std::cout << "[ eval ] TorchScript vs eager: " << 100 * disagreement(eager, script) << " % of the pixels differ, "
            << "bf16 vs fp32: " << 100 * disagreement(eager, bf16) << " %\n";
}

TEST_F(InferenceRun, NativeResolutionScoresEveryMaskAtItsOwnSize) {
  const EvalSummary own = eval([](EvalOptions& o) { o.inference.resize = "none"; });
  const EvalSummary native = eval([](EvalOptions& o) {
    o.inference.resize = "none";
    o.native_resolution = true;
  });
  EXPECT_EQ(confusion(native), confusion(own)) << "at the image's own size the mask is at its own size already";
  const EvalSummary square = eval([](EvalOptions& o) { o.native_resolution = true; });
  EXPECT_EQ(square.scores.pixels, own.scores.pixels) << "64x64 logits upsampled to each mask";
  const EvalSummary batched = eval([](EvalOptions&) {});
  EXPECT_EQ(batched.scores.pixels, batched.images * 64 * 64) << "scored at the 64x64 square";
  EXPECT_EQ(batched.images, own.images);
}

TEST_F(InferenceRun, TtaAndJsonScores) {
  const fs::path json = dir_->path() / "scores.json";
  const EvalSummary tta = eval([&](EvalOptions& o) {
    o.inference.tta = {"flip", "0.75", "1.0", "1.25"};
    o.inference.resize = "shorter";
    o.json = json;
  });
  const nlohmann::json j = nlohmann::json::parse(read_text_file(json));
  for (const char* key : {"miou", "iou", "dice", "precision", "recall", "confusion_matrix", "classes"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["classes"], nlohmann::json({"pet", "background", "border"}));
  EXPECT_NEAR(j["miou"].get<double>(), tta.scores.mean_iou, 1e-12);
  EXPECT_EQ(j["confusion_matrix"].get<std::vector<std::vector<int64_t>>>(), tta.scores.confusion);
  const std::string table = metrics::format_scores(tta.scores, {"pet", "background", "border"});
  for (const char* part : {"IoU %", "Dice %", "precision %", "recall %", "border", "mean Dice"}) {
    EXPECT_NE(table.find(part), std::string::npos) << part << " in\n" << table;
  }
}

TEST_F(InferenceRun, PredictSlidesOverABigImageAndWritesItsOwnSize) {
  // big.jpg: a pet image upscaled to 230 x 170, predicted in 64-pixel windows 48 apart, with flips.
  const data::SegmentationDataset ds = data::SegmentationDataset::open(dir_->path() / "data", data::Split::kTest);
  const auto bytes = read_file(ds[0].image);
  const image::Image big = data::resize_bilinear(image::decode_rgb(bytes.data(), bytes.size()), 230, 170);
  const fs::path in = dir_->path() / "predict_in";
  fs::create_directories(in / "more");
  write_file_atomic(in / "big.jpg", image::encode_jpeg(big).data(), image::encode_jpeg(big).size());
  fs::copy_file(ds[1].image, in / "more" / "small.jpg", fs::copy_options::overwrite_existing);
  PredictOptions p;
  p.checkpoint = checkpoint();
  p.inputs = {in / "big.jpg", in / "more"};
  p.out = dir_->path() / "predict_out";
  p.inference.mode = "slide";
  p.inference.tile = 64;
  p.inference.stride = 48;
  p.inference.tta = {"flip"};
  EXPECT_EQ(run_predict(p).written, 2);
  for (const auto& [name, source] :
       std::vector<std::pair<std::string, fs::path>>{{"big", in / "big.jpg"}, {"small", in / "more/small.jpg"}}) {
    const auto image = read_file(source);
    const image::ImageHeader h = image::read_header(image.data(), image.size());
    const auto mask_bytes = read_file(p.out / (name + "_mask.png"));
    const image::Image mask = image::decode_mask(mask_bytes.data(), mask_bytes.size());
    EXPECT_EQ(mask.width, h.width) << name;
    EXPECT_EQ(mask.height, h.height) << name;
    EXPECT_EQ(data::find_invalid_trimap_value(mask), -1) << "trimap values";
    EXPECT_TRUE(fs::exists(p.out / (name + "_overlay.png")));
  }
  // No image named, or one that is missing: the error says how to name them.
  p.inputs.clear();
  EXPECT_NE(error_of([&] { run_predict(p); }).find("predict needs images"), std::string::npos);
  p.inputs = {in / "nope.jpg"};
  EXPECT_NE(error_of([&] { run_predict(p); }).find("nope.jpg does not exist"), std::string::npos);
}

}  // namespace
}  // namespace petseg::train
