// Prediction: decode (any JPEG/PNG, converted to RGB), resize as the plan says, infer (whole or sliding windows, with
// or without TTA: train/inference.h), the scores brought to the image's own size, argmax, write the mask and an
// overlay.
#include "train/predict.h"

#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <sys/resource.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/layout.h"
#include "model/inference_model.h"
#include "report/visualize.h"
#include "train/checkpoint.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;

// The images of each input (a folder: its .jpg and .png files, sorted), in the order given. Two inputs whose files
// share a stem would write the same mask: an error naming both.
std::vector<fs::path> list_inputs(const std::vector<fs::path>& inputs) {
  PETSEG_CHECK(!inputs.empty(),
               "predict needs images: name them (petseg predict --checkpoint FILE --out DIR a.jpg "
               "photos/) or pass --input");
  static const std::set<std::string> kExt = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
  std::vector<fs::path> files;
  for (const fs::path& input : inputs) {
    PETSEG_CHECK(fs::exists(input), "input ", input.string(), " does not exist");
    if (!fs::is_directory(input)) {
      files.push_back(input);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(input)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && kExt.count(e.path().extension().string()) && name[0] != '.') found.push_back(e.path());
    }
    PETSEG_CHECK(!found.empty(), "input folder ", input.string(), " holds no .jpg or .png images");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  std::map<std::string, fs::path> by_stem;
  std::vector<fs::path> unique;
  for (const fs::path& f : files) {
    const auto [it, fresh] = by_stem.emplace(f.stem().string(), f);
    PETSEG_CHECK(fresh || it->second == f, "inputs ", it->second.string(), " and ", f.string(), " would both write ",
                 f.stem().string(), "_mask.png: predict them into different --out folders");
    if (fresh) unique.push_back(f);  // a file named twice is predicted once
  }
  return unique;
}

std::optional<image::Image> decode(const fs::path& path) {
  try {
    const auto bytes = read_file(path);
    return image::decode_rgb(bytes.data(), bytes.size());
  } catch (const Error& e) {
    log_warning("skipping ", path.string(), ": ", e.what());
    return std::nullopt;
  }
}

// The class of every pixel of `rgb`, [H,W] int64 on the host; the input and the scores are freed before it returns.
at::Tensor classes_of(model::InferenceModel& model, const InferencePlan& plan, const image::Image& rgb) {
  const Forward forward = [&model](const at::Tensor& x) { return model.forward(x); };
  const at::Tensor x = input_tensor(rgb, plan, /*pin=*/model.device().is_cuda());
  return infer_scores(forward, x, plan, rgb.height, rgb.width).argmax(1)[0].to(at::kCPU).contiguous();
}

// "host 1.2 GiB, CUDA 0.4 GiB": the process's peak resident memory and the CUDA caching allocator's peak.
std::string peak_memory(const at::Device& device) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double gib = 1024.0 * 1024 * 1024;
  std::string text = detail::str_cat("host ", double(usage.ru_maxrss) * 1024 / gib, " GiB");
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    text += detail::str_cat(", CUDA ", double(stats.allocated_bytes[aggregate].peak) / gib, " GiB");
  }
  return text;
}

}  // namespace

PredictSummary run_predict(const PredictOptions& o) {
  keep_freed_host_memory();
  CheckpointInfo info;
  model::SegmentationModel net = load_checkpoint_model(o.checkpoint, &info);
  const RunSpec& spec = info.config.spec;
  const std::string name = model::model_name(spec.model);
  const InferencePlan plan =
      make_plan(o.inference, spec.image_size, name, model::find_backbone(spec.model.backbone).output_stride);
  const at::Device device = resolve_device(o.device);
  model::InferenceModel model(net, device, model_options(o.inference, spec.amp, o.torch_script));
  // Masks stored as the run's data set stores them (the pets: trimap values), drawn in its colours.
  const data::Layout& layout = data::layout_named(spec.layout);
  const image::Palette palette = layout.palette(int(model.num_classes()));
  const std::vector<fs::path> inputs = list_inputs(o.inputs);
  fs::create_directories(o.out);
  log_info("predict: ", name, " (", model.describe(), "); ", describe(plan));
  c10::InferenceMode inference;
  PredictSummary summary;
  for (const fs::path& path : inputs) {
    const std::optional<image::Image> rgb = decode(path);
    if (!rgb) {
      ++summary.skipped;
      continue;
    }
    const at::Tensor cls = classes_of(model, plan, *rgb);
    image::Image mask(rgb->width, rgb->height, 1);
    const int64_t* c = cls.data_ptr<int64_t>();
    for (size_t i = 0; i < mask.pixels.size(); ++i) mask.pixels[i] = layout.stored_value(c[i]);
    const std::string stem = path.stem().string();
    report::write_png(o.out / (stem + "_mask.png"), mask);
    report::write_png(o.out / (stem + "_overlay.png"), report::overlay(*rgb, cls, 0.5f, palette));
    ++summary.written;
  }
  log_info("predict: wrote ", summary.written, " masks and overlays to ", o.out.string(),
           summary.skipped ? detail::str_cat(", skipped ", summary.skipped, " unreadable images") : "",
           " (peak memory: ", peak_memory(device), ")");
  return summary;
}

}  // namespace petseg::train
