// Inference at the size an image calls for, shared by eval and predict: how an image is resized before the model sees
// it (the training square, torchvision's evaluation preset, its own size), the whole image at once or overlapping
// windows placed as mmsegmentation's slide_inference places them, and test-time augmentation (flips and scales, the
// softmax probabilities averaged as mmsegmentation's TTA averages them).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/choices.h"
#include "image/image_io.h"
#include "model/inference_model.h"

namespace petseg::train {

inline const Choices kResizeChoices = {"auto", "square", "shorter", "none"};  // --resize
inline const Choices kWindowModeChoices = {"whole", "slide"};                 // --mode
inline const Choices kPrecisionChoices = {"auto", "fp32", "bf16"};            // --precision

// What the command line asks for (its words and numbers, as --print-plan shows them).
struct InferenceRequest {
  std::string resize = "auto";  // auto: square with --mode whole, none with --mode slide
  int image_size = 0;           // the square's side, or the shorter side; 0: the checkpoint's --image-size
  std::string mode = "whole";
  int tile = 512;                      // slide: window side (mmsegmentation's crop_size)
  int stride = 0;  // slide: step between windows; 0: two thirds of --tile (341 for 512, mmsegmentation's configurations)
  std::vector<std::string> tta;        // "flip" and positive scales ("0.75"); empty: none
  std::string precision = "auto";      // auto: bf16 for a run trained under --amp bf16 or fp16, else fp32
  std::string memory_format = "auto";  // model::kMemoryFormatChoices
};

enum class Resize { kSquare, kShorter, kNone };
enum class WindowMode { kWhole, kSlide };

struct TestTimeAugmentation {
  bool flip = false;
  std::vector<double> scales = {1.0};
  size_t count() const { return scales.size() * (flip ? 2 : 1); }
};

// The request resolved against a checkpoint and checked.
struct InferencePlan {
  Resize resize = Resize::kSquare;
  int image_size = 0;
  WindowMode mode = WindowMode::kWhole;
  int tile = 512, stride = 341;
  int tile_batch = 4;  // slide: windows per forward; device memory is bounded by this many windows
  TestTimeAugmentation tta;
};

// --tta's words: each "flip" or a positive scale; anything else names --tta and what is valid.
TestTimeAugmentation parse_tta(const std::vector<std::string>& words);
// Resolves auto and 0 against the checkpoint (its --image-size) and checks the numbers: --image-size and --tile no
// smaller than the model's output stride (a window narrower than one feature pixel), 1 <= --stride <= --tile (a larger
// stride would leave pixels no window covers). Each error names its option.
InferencePlan make_plan(const InferenceRequest& request, int checkpoint_image_size, const std::string& model_name,
                        int output_stride);
// The model's settings for a request: --precision (auto: the run's --amp), --memory-format, TorchScript.
model::InferenceModelOptions model_options(const InferenceRequest& request, const std::string& run_amp,
                                           bool torch_script);

// The size {width, height} an image of width x height is resized to: S x S; the shorter side S, the longer one
// int(S * long / short) as torchvision's resize truncates it; or its own.
std::pair<int, int> resized_size(int width, int height, Resize resize, int size);
// The model's input for a decoded RGB image at the plan's size: [1,3,h,w] ImageNet-normalized floats, resampled as
// PIL's antialiased bilinear (what torchvision's preset does to a PIL image); page-locked when `pin`.
at::Tensor input_tensor(const image::Image& rgb, const InferencePlan& plan, bool pin);

// A window [y0, y1) x [x0, x1) of an image.
struct Window {
  int y0, y1, x0, x1;
};
// Where the windows start along a side of `length` pixels, as mmsegmentation's slide_inference places them:
// max(length - tile + stride - 1, 0) / stride + 1 windows, stride apart, the last moved back inside; each spans
// min(tile, length) (a side shorter than the tile is one window).
std::vector<int> window_starts(int length, int tile, int stride);
// The windows of a height x width image, row by row: the grid of both sides' starts.
std::vector<Window> slide_windows(int height, int width, int tile, int stride);

// [N,3,h,w] -> [N,C,h,w] float32 logits (an InferenceModel's forward; tests pass functions of their own).
using Forward = std::function<at::Tensor(const at::Tensor&)>;

// Sliding-window logits of `image` [1,3,H,W] (on the host): the windows go through `forward` tile_batch at a time
// (they all have one shape), their logits are summed on the host and divided by how many windows cover each pixel.
// Returns [1,C,H,W] float32 on the host. Device memory holds at most tile_batch windows.
at::Tensor slide_logits(const Forward& forward, const at::Tensor& image, int tile, int stride, int tile_batch);

// The scores of `image` [1,3,h,w] at out_height x out_width, ready for argmax over dim 1: per augmentation (each
// scale, each flip) the logits of the whole image (mode whole) or of its windows (mode slide), resized bilinearly to
// the output size and flipped back. One augmentation: those logits. Several: the mean of their softmax
// probabilities. On forward's device for mode whole, on the host for mode slide.
at::Tensor infer_scores(const Forward& forward, const at::Tensor& image, const InferencePlan& plan, int out_height,
                        int out_width);

// "slide 512/341 at the image's own size, TTA flip x 0.75,1,1.25" for the log.
std::string describe(const InferencePlan& plan);

}  // namespace petseg::train
