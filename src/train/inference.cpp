// Resizing, window placement, sliding-window accumulation and test-time augmentation.
#include "train/inference.h"

#include <ATen/ops/_upsample_bilinear2d_aa.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <sstream>

#include "core/check.h"
#include "data/transforms.h"

namespace petseg::train {
namespace {

// An image [1,3,h,w] at `scale` times its size, mmcv's rounding (int(side * scale + 0.5)); antialiased when it
// shrinks, as torchvision resizes tensors.
at::Tensor rescale(const at::Tensor& image, double scale) {
  const int64_t h = static_cast<int64_t>(double(image.size(2)) * scale + 0.5);
  const int64_t w = static_cast<int64_t>(double(image.size(3)) * scale + 0.5);
  PETSEG_CHECK(h >= 1 && w >= 1, "--tta scale ", scale, " makes the ", image.size(3), "x", image.size(2),
               " input empty");
  return at::_upsample_bilinear2d_aa(image, {h, w}, /*align_corners=*/false);
}

// Logits [N,C,h,w] at out_height x out_width (bilinear, align_corners=False: the models' own upsampling).
at::Tensor resize_logits(const at::Tensor& logits, int out_height, int out_width) {
  if (logits.size(2) == out_height && logits.size(3) == out_width) return logits;
  return at::upsample_bilinear2d(logits, {out_height, out_width}, /*align_corners=*/false);
}

// How many windows cover each position along a side: the windows form a grid, so the count at (y, x) is the
// product of both sides' counts and no image-sized count matrix is needed.
at::Tensor coverage(int length, const std::vector<int>& starts, int span) {
  at::Tensor count = at::zeros({length}, at::kFloat);
  for (int s : starts) count.narrow(0, s, span).add_(1);
  return count;
}

std::string format_scale(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

}  // namespace

TestTimeAugmentation parse_tta(const std::vector<std::string>& words) {
  TestTimeAugmentation tta;
  std::vector<double> scales;
  for (const std::string& word : words) {
    if (word == "flip") {
      tta.flip = true;
      continue;
    }
    size_t used = 0;
    double scale = 0;
    try {
      scale = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    PETSEG_CHECK(used > 0 && used == word.size() && std::isfinite(scale) && scale > 0, "unknown --tta \"", word,
                 "\"; valid: flip, and positive scales such as 0.75,1.0,1.25 (e.g. --tta flip,0.75,1.0,1.25)");
    scales.push_back(scale);
  }
  if (!scales.empty()) tta.scales = scales;
  return tta;
}

InferencePlan make_plan(const InferenceRequest& r, int checkpoint_image_size, const std::string& model_name,
                        int output_stride) {
  check_choice("--resize", r.resize, kResizeChoices);
  check_choice("--mode", r.mode, kWindowModeChoices);
  InferencePlan p;
  p.mode = r.mode == "slide" ? WindowMode::kSlide : WindowMode::kWhole;
  const std::string resize = r.resize != "auto" ? r.resize : p.mode == WindowMode::kSlide ? "none" : "square";
  p.resize = resize == "square" ? Resize::kSquare : resize == "shorter" ? Resize::kShorter : Resize::kNone;
  PETSEG_CHECK(r.image_size >= 0, "--image-size must be positive (0: the checkpoint's), got ", r.image_size);
  p.image_size = r.image_size > 0 ? r.image_size : checkpoint_image_size;
  PETSEG_CHECK(p.image_size >= output_stride, "--image-size ", p.image_size, " is smaller than ", model_name,
               "'s output stride (", output_stride, " pixels per feature); valid: --image-size >= ", output_stride);
  PETSEG_CHECK(r.tile >= output_stride, "--tile ", r.tile, " is smaller than ", model_name, "'s output stride (",
               output_stride, " pixels per feature); valid: --tile >= ", output_stride);
  const int stride = r.stride == 0 ? std::max(1, r.tile * 2 / 3) : r.stride;  // 0: two thirds of the tile
  PETSEG_CHECK(stride >= 1 && stride <= r.tile, "--stride ", stride, " with --tile ", r.tile,
               ": valid: 1 <= --stride <= --tile (a larger stride leaves pixels that no window covers)");
  p.tile = r.tile;
  p.stride = stride;
  p.tta = parse_tta(r.tta);
  return p;
}

model::InferenceModelOptions model_options(const InferenceRequest& r, const std::string& run_amp, bool torch_script) {
  check_choice("--precision", r.precision, kPrecisionChoices);
  check_choice("--memory-format", r.memory_format, model::kMemoryFormatChoices);
  model::InferenceModelOptions o;
  // A run trained under autocast was validated in reduced precision every epoch; bf16 rather than fp16 for an fp16
  // run: folded weights can leave fp16's range, and CPUs run bf16.
  const std::string precision = r.precision != "auto" ? r.precision : run_amp == "off" ? "fp32" : "bf16";
  o.dtype = model::inference_dtype(precision);
  o.memory_format = r.memory_format;
  o.torch_script = torch_script;
  return o;
}

std::pair<int, int> resized_size(int width, int height, Resize resize, int size) {
  PETSEG_CHECK(width > 0 && height > 0 && size > 0, "bad resize request ", width, "x", height, " -> ", size);
  switch (resize) {
    case Resize::kSquare:
      return {size, size};
    case Resize::kNone:
      return {width, height};
    case Resize::kShorter:
      break;
  }
  if (width <= height) return {size, static_cast<int>(int64_t(size) * height / width)};
  return {static_cast<int>(int64_t(size) * width / height), size};
}

at::Tensor input_tensor(const image::Image& rgb, const InferencePlan& plan, bool pin) {
  const auto [w, h] = resized_size(rgb.width, rgb.height, plan.resize, plan.image_size);
  at::Tensor x = at::empty({1, 3, h, w}, at::TensorOptions().dtype(at::kFloat).pinned_memory(pin));
  data::render_image_resized(rgb, w, h, x.data_ptr<float>());
  return x;
}

std::vector<int> window_starts(int length, int tile, int stride) {
  PETSEG_CHECK(length > 0 && tile > 0 && stride > 0, "bad window request: length ", length, ", tile ", tile,
               ", stride ", stride);
  const int windows = std::max(length - tile + stride - 1, 0) / stride + 1;
  std::vector<int> starts;
  for (int i = 0; i < windows; ++i) starts.push_back(std::max(std::min(i * stride + tile, length) - tile, 0));
  return starts;
}

std::vector<Window> slide_windows(int height, int width, int tile, int stride) {
  const std::vector<int> ys = window_starts(height, tile, stride), xs = window_starts(width, tile, stride);
  const int span_y = std::min(tile, height), span_x = std::min(tile, width);
  std::vector<Window> windows;
  for (int y : ys) {
    for (int x : xs) windows.push_back({y, y + span_y, x, x + span_x});
  }
  return windows;
}

at::Tensor slide_logits(const Forward& forward, const at::Tensor& image, int tile, int stride, int tile_batch) {
  PETSEG_CHECK(image.dim() == 4 && image.size(0) == 1, "slide inference takes one image [1,3,H,W]");
  PETSEG_CHECK(tile_batch >= 1, "slide inference needs tile_batch >= 1");
  const at::Tensor host = image.to(at::kCPU);
  const int H = int(host.size(2)), W = int(host.size(3));
  const std::vector<Window> windows = slide_windows(H, W, tile, stride);
  at::Tensor sum;  // [1,C,H,W] on the host: only tile_batch windows are ever on the device
  for (size_t first = 0; first < windows.size(); first += size_t(tile_batch)) {
    const size_t n = std::min(windows.size() - first, size_t(tile_batch));
    std::vector<at::Tensor> crops;
    for (size_t k = 0; k < n; ++k) {
      const Window& w = windows[first + k];
      crops.push_back(host.narrow(2, w.y0, w.y1 - w.y0).narrow(3, w.x0, w.x1 - w.x0));
    }
    const at::Tensor logits = forward(at::cat(crops)).to(at::kCPU, at::kFloat);
    if (!sum.defined()) sum = at::zeros({1, logits.size(1), H, W}, at::kFloat);
    for (size_t k = 0; k < n; ++k) {
      const Window& w = windows[first + k];
      sum.narrow(2, w.y0, w.y1 - w.y0).narrow(3, w.x0, w.x1 - w.x0).add_(logits[int64_t(k)]);
    }
  }
  const at::Tensor rows = coverage(H, window_starts(H, tile, stride), std::min(tile, H));
  const at::Tensor cols = coverage(W, window_starts(W, tile, stride), std::min(tile, W));
  return sum.div_(rows.view({1, 1, H, 1})).div_(cols.view({1, 1, 1, W}));
}

at::Tensor infer_scores(const Forward& forward, const at::Tensor& image, const InferencePlan& plan, int out_height,
                        int out_width) {
  const bool average = plan.tta.count() > 1;
  at::Tensor total;
  for (double scale : plan.tta.scales) {
    const at::Tensor scaled = scale == 1.0 ? image : rescale(image, scale);
    for (bool flip : {false, true}) {
      if (flip && !plan.tta.flip) continue;
      const at::Tensor x = flip ? scaled.flip({3}) : scaled;
      at::Tensor scores = plan.mode == WindowMode::kSlide
                              ? slide_logits(forward, x, plan.tile, plan.stride, plan.tile_batch)
                              : forward(x);
      scores = resize_logits(scores, out_height, out_width);
      if (average) scores = at::softmax(scores, /*dim=*/1);
      if (flip) scores = scores.flip({3});
      total = total.defined() ? total.add_(scores) : scores;
    }
  }
  return average ? total.div_(double(plan.tta.count())) : total;
}

std::string describe(const InferencePlan& plan) {
  std::ostringstream os;
  os << (plan.mode == WindowMode::kSlide ? "slide " + std::to_string(plan.tile) + "/" + std::to_string(plan.stride)
                                         : std::string("whole image"));
  switch (plan.resize) {
    case Resize::kSquare:
      os << ", resized to " << plan.image_size << "x" << plan.image_size;
      break;
    case Resize::kShorter:
      os << ", shorter side resized to " << plan.image_size;
      break;
    case Resize::kNone:
      os << ", at the image's own size";
      break;
  }
  if (plan.tta.count() > 1) {
    os << ", TTA " << (plan.tta.flip ? "flip x " : "") << "scales";
    for (size_t i = 0; i < plan.tta.scales.size(); ++i) os << (i ? "," : " ") << format_scale(plan.tta.scales[i]);
  }
  return os.str();
}

}  // namespace petseg::train
