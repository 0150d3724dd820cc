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
#include "data/layout.h"
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

// [1,3,S,S]: exactly what the evaluation transform feeds the model.
at::Tensor to_input(const image::Image& rgb, int size) {
  at::Tensor x = at::empty({1, 3, size, size}, at::kFloat);
  data::render_image(rgb, data::eval_geometry(size), x.data_ptr<float>());
  return x;
}

}  // namespace

PredictSummary run_predict(const PredictOptions& o) {
  CheckpointInfo info;
  model::SegmentationModel net = load_checkpoint_model(o.checkpoint, &info);
  const at::Device device = resolve_device(o.device);
  net->to(device);
  net->eval();
  const int size = info.config.spec.image_size;
  // Masks stored as the run's data set stores them (the pets: trimap values), drawn in its colours.
  const data::Layout& layout = data::layout_named(info.config.spec.layout);
  const image::Palette palette = layout.palette(int(net->num_classes()));
  const std::vector<fs::path> inputs = list_inputs(o.input);
  fs::create_directories(o.out);
  torch::NoGradGuard no_grad;
  std::optional<torch::jit::Module> fast;
  if (o.torch_script) {
    fast = model::optimize_for_inference(model::trace_model(*net, at::zeros({1, 3, size, size}, device)));
  }
  PredictSummary summary;
  for (const fs::path& path : inputs) {
    image::Image rgb;
    try {
      const auto bytes = read_file(path);
      rgb = image::decode_rgb(bytes.data(), bytes.size());
    } catch (const Error& e) {
      log_warning("skipping ", path.string(), ": ", e.what());
      ++summary.skipped;
      continue;
    }
    const at::Tensor x = to_input(rgb, size).to(device);
    const at::Tensor logits = fast ? model::run_scripted(*fast, x).out : net->forward(x).out;
    const at::Tensor full = model::upsample_like(logits, at::empty({1, 1, rgb.height, rgb.width}, device));
    const at::Tensor cls = full.argmax(1)[0].to(at::kCPU, at::kLong).contiguous();
    image::Image mask(rgb.width, rgb.height, 1);
    const int64_t* c = cls.data_ptr<int64_t>();
    for (size_t i = 0; i < mask.pixels.size(); ++i) mask.pixels[i] = layout.stored_value(c[i]);
    const std::string stem = path.stem().string();
    report::write_png(o.out / (stem + "_mask.png"), mask);
    report::write_png(o.out / (stem + "_overlay.png"), report::overlay(rgb, cls, 0.5f, palette));
    ++summary.written;
  }
  log_info("predict: wrote ", summary.written, " masks and overlays to ", o.out.string(),
           summary.skipped ? petseg::detail::str_cat(", skipped ", summary.skipped, " unreadable images") : "");
  return summary;
}

}  // namespace petseg::train
