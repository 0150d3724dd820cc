// Prediction: decode (any JPEG/PNG, converted to RGB), resize to the trained size, forward, upsample the logits
// back to the image's size (bilinear, as the model's own head does), argmax, write the mask and an overlay.
#include "train/predict.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <set>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/transforms.h"
#include "model/factory.h"
#include "model/torchscript.h"
#include "report/visualize.h"
#include "train/checkpoint.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> list_inputs(const fs::path& input) {
  PETSEG_CHECK(fs::exists(input), "--input ", input.string(), " does not exist");
  if (!fs::is_directory(input)) return {input};
  std::vector<fs::path> files;
  static const std::set<std::string> kExt = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
  for (const auto& e : fs::directory_iterator(input)) {
    if (e.is_regular_file() && kExt.count(e.path().extension().string()) && e.path().filename().string()[0] != '.') {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  PETSEG_CHECK(!files.empty(), "--input ", input.string(), " holds no .jpg or .png images");
  return files;
}

// [1,3,S,S] normalized, as the evaluation transform makes it.
at::Tensor to_input(const data::Image& rgb, int size) {
  const data::Image small = data::resize_bilinear(rgb, size, size);
  at::Tensor x = at::empty({1, 3, size, size}, at::kFloat);
  float* p = x.data_ptr<float>();
  const size_t plane = size_t(size) * size;
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) {
      p[c * plane + i] = (small.pixels[i * 3 + c] / 255.0f - data::kImageNetMean[c]) / data::kImageNetStd[c];
    }
  }
  return x;
}

}  // namespace

PredictSummary run_predict(const PredictOptions& o) {
  const CheckpointInfo info = read_checkpoint_info(o.checkpoint);
  configure_threads(info.config.threads);
  model::ModelConfig mc = info.config.model;
  mc.weights.clear();
  mc.backbone_weights.clear();
  model::DeepLabV3 net = model::build_model(mc).model;
  load_checkpoint(o.checkpoint, *net, nullptr);
  const at::Device device = resolve_device(o.device);
  net->to(device);
  net->eval();
  const int size = info.config.image_size;
  const std::vector<fs::path> inputs = list_inputs(o.input);
  fs::create_directories(o.out);
  torch::NoGradGuard no_grad;
  std::optional<torch::jit::Module> fast;
  if (o.torch_script) {
    fast = model::optimize_for_inference(model::trace_model(*net, at::zeros({1, 3, size, size}, device)));
  }
  PredictSummary summary;
  for (const fs::path& path : inputs) {
    data::Image rgb;
    try {
      const auto bytes = read_file(path);
      rgb = data::decode_rgb(bytes.data(), bytes.size());
    } catch (const Error& e) {
      log_warning("skipping ", path.string(), ": ", e.what());
      ++summary.skipped;
      continue;
    }
    const at::Tensor x = to_input(rgb, size).to(device);
    const at::Tensor logits = fast ? model::run_scripted(*fast, x).out : net->forward(x).out;
    const at::Tensor full = model::upsample_like(logits, at::empty({1, 1, rgb.height, rgb.width}, device));
    const at::Tensor cls = full.argmax(1)[0].to(at::kCPU, at::kLong).contiguous();
    data::Image mask(rgb.width, rgb.height, 1);
    const int64_t* c = cls.data_ptr<int64_t>();
    for (size_t i = 0; i < mask.pixels.size(); ++i) mask.pixels[i] = uint8_t(c[i] + 1);  // class -> trimap value
    const std::string stem = path.stem().string();
    report::write_png(o.out / (stem + "_mask.png"), mask);
    report::write_png(o.out / (stem + "_overlay.png"), report::overlay(rgb, cls));
    ++summary.written;
  }
  log_info("predict: wrote ", summary.written, " masks and overlays to ", o.out.string(),
           summary.skipped ? petseg::detail::str_cat(", skipped ", summary.skipped, " unreadable images") : "");
  return summary;
}

}  // namespace petseg::train
