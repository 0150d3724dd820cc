// train/inference: windows placed as mmsegmentation places them (hand-checked), sliding windows that give the whole
// image's logits for a model that sees no borders and a single window for an image smaller than the tile, whole,
// slide and test-time augmentation against mmsegmentation's own code (tests/python/inference_reference.py) for a model
// that does see borders, the resize rules, and each bad option named.
#include "train/inference.h"

#include <ATen/ops/conv2d.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/device.h"
#include "model/random_weights.h"
#include "model/torch_archive.h"
#include "model/weights.h"
#include "test_util.h"

namespace petseg::train {
namespace {

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
  e = error([](InferenceRequest& r) { r.stride = 0; });
  EXPECT_TRUE(has(e, "--stride 0") && has(e, "1 <= --stride <= --tile")) << e;
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

}  // namespace
}  // namespace petseg::train
