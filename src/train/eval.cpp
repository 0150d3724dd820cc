// evaluate (the epoch's validation pass) and run_eval (`petseg eval`: a checkpoint through the inference model, at
// the size, windows and augmentations asked for).
#include "train/eval.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/autocast.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/layout.h"
#include "data/loader.h"
#include "data/synth.h"
#include "distributed/communicator.h"
#include "model/inference_model.h"
#include "train/checkpoint.h"
#include "train/prefetch.h"
#include "train/runner.h"

namespace petseg::train {

std::vector<std::string> model_classes(const data::SegmentationDataset& dataset, const RunSpec& spec) {
  const bool trimaps = data::layout_named(dataset.layout()).has_trimap_border();
  const std::vector<std::string>& names = dataset.class_names();  // opened with the spec's --border
  const size_t n = names.size();
  PETSEG_CHECK(spec.model.num_classes == 0 || spec.model.num_classes == int64_t(n), "the model has ",
               spec.model.num_classes, " classes (--num-classes, or the run's) and ", dataset.root().string(), " (",
               dataset.layout(), trimaps ? ", --border " + spec.border : std::string(), ") has ", n);
  if (!trimaps && spec.border != "3class") {
    warn_once("border-not-trimaps", detail::str_cat("--border applies to Oxford-IIIT Pet trimaps only; ",
                                                    dataset.root().string(), " is a ", dataset.layout(), " data set"));
  }
  return names;
}

EvalResult evaluate(Runner& runner, data::DataLoader& loader, const at::Device& device, const StepPrecision& precision,
                    int64_t num_classes, int64_t max_batches, int vis_samples, distributed::Communicator& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  runner.model()->eval();
  torch::NoGradGuard no_grad;
  metrics::ConfusionMatrix cm(num_classes);
  EvalResult r;
  std::vector<at::Tensor> vi, vt, vp;
  int64_t kept = 0, batches = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    if (max_batches > 0 && batches++ >= max_batches) break;
    at::Tensor x = batch->images.to(device, /*non_blocking=*/batch->images.is_pinned());
    if (precision.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor target = batch->masks.to(device, /*non_blocking=*/batch->masks.is_pinned());
    at::Tensor pred;
    {
      AutocastGuard autocast(device.type(), precision.dtype, precision.amp);
      pred = runner.forward(x).out.argmax(1);
    }
    cm.update(target, pred);
    r.images += x.size(0);
    if (kept < vis_samples) {
      const int64_t n = std::min<int64_t>(vis_samples - kept, x.size(0));
      vi.push_back(batch->images.narrow(0, 0, n).clone());
      vt.push_back(batch->masks.narrow(0, 0, n).clone());
      vp.push_back(pred.narrow(0, 0, n));  // stays on the device: one copy to the host after the loop
      kept += n;
    }
  }
  loader.stop();
  if (comm.world_size() > 1) cm.reduce([&](at::Tensor& t) { comm.allreduce_sum(t); });
  r.scores = cm.compute();
  if (kept) {
    r.vis_images = at::cat(vi);
    r.vis_targets = at::cat(vt);
    r.vis_preds = at::cat(vp).to(at::kCPU);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

namespace {

// One validation sample as inference at a size of its own needs it.
struct SizedSample {
  at::Tensor image;   // [1,3,h,w]: the plan's input
  at::Tensor target;  // [1,h,w] int64 class indices at the input's size, or [1,H,W] at the mask's own
};

std::optional<SizedSample> load_sized_sample(const data::SegmentationDataset& ds, size_t i, const InferencePlan& plan,
                                             data::BorderMode border, bool native, bool pin) {
  const data::SegmentationSample& sample = ds[i];
  data::DecodedPair pair;
  try {
    // Decoded at full size (no DCT scaling): what PIL decodes for torchvision's preset.
    data::load_pair(sample.image, sample.mask, pair, {}, ds.mask_spec(sample));
  } catch (const data::SampleError& e) {
    warn_once(e.file().string(), "skipping sample " + sample.name + ": " + e.what());
    return std::nullopt;
  }
  SizedSample s;
  s.image = input_tensor(pair.rgb, plan, pin);
  const int w = native ? pair.mask.width : int(s.image.size(3));
  const int h = native ? pair.mask.height : int(s.image.size(2));
  s.target = at::empty({1, h, w}, at::TensorOptions().dtype(at::kLong).pinned_memory(pin));
  data::render_mask_resized(pair.mask, w, h, ds.mask_lut(sample, border), s.target.data_ptr<int64_t>());
  return s;
}

// Every sample at its own size (or the plan's), one at a time, decoded ahead by the loader's workers.
int64_t evaluate_sized(model::InferenceModel& model, const data::SegmentationDataset& ds, const InferencePlan& plan,
                       const RunSpec& spec, const EvalOptions& o, metrics::ConfusionMatrix& cm) {
  const bool pin = model.device().is_cuda() && o.loader.pin_memory;
  const data::BorderMode border = data::parse_border_mode(spec.border);
  const Forward forward = [&model](const at::Tensor& x) { return model.forward(x); };
  OrderedPrefetch<std::optional<SizedSample>> samples(
      ds.size(), o.loader.num_workers,
      [&](size_t i) { return load_sized_sample(ds, i, plan, border, o.native_resolution, pin); },
      o.loader.worker_nice);
  int64_t images = 0;
  while (auto sample = samples.next()) {
    if (!*sample) continue;
    const at::Tensor target = (*sample)->target.to(model.device(), /*non_blocking=*/pin);
    // Whole: the image goes to the device in forward; slide keeps it (and the window sums) on the host.
    const at::Tensor scores = infer_scores(forward, (*sample)->image, plan, int(target.size(1)), int(target.size(2)));
    cm.update(target, scores.argmax(1).to(model.device()));
    ++images;
  }
  return images;
}

// The square resize in the run's batches, as each epoch's validation ran (the loader's workers, pinned batches).
int64_t evaluate_square(model::InferenceModel& model, std::shared_ptr<const data::SegmentationDataset> ds,
                        const InferencePlan& plan, const RunSpec& spec, const EvalOptions& o,
                        metrics::ConfusionMatrix& cm) {
  data::LoaderOptions lo = loader_options(spec, o.loader, /*train=*/false, model.device().is_cuda());
  lo.image_size = plan.image_size;
  data::DataLoader loader(std::move(ds), lo);
  int64_t images = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    const at::Tensor target = batch->masks.to(model.device(), /*non_blocking=*/batch->masks.is_pinned());
    cm.update(target, model.forward(batch->images).argmax(1));
    images += batch->images.size(0);
  }
  loader.stop();
  return images;
}

bool batched(const InferencePlan& plan, bool native_resolution) {
  return plan.resize == Resize::kSquare && plan.mode == WindowMode::kWhole && plan.tta.count() == 1 &&
         plan.tta.scales[0] == 1.0 && !native_resolution;
}

}  // namespace

EvalSummary run_eval(const EvalOptions& o) {
  keep_freed_host_memory();
  CheckpointInfo info;
  model::SegmentationModel net = load_checkpoint_model(o.checkpoint, &info);
  const RunSpec& spec = info.config.spec;
  std::filesystem::path data = o.data.empty() ? spec.data : o.data;
  if (data.empty()) data = data::default_dataset();
  const std::string name = model::model_name(spec.model);
  const InferencePlan plan = make_plan(o.inference, spec.image_size, name,
                                       model::find_backbone(spec.model.backbone).output_stride);
  model::InferenceModel model(net, resolve_device(o.device), model_options(o.inference, spec.amp, o.torch_script));
  auto dataset = std::make_shared<const data::SegmentationDataset>(
      data::SegmentationDataset::open(data, data::Split::kTest, dataset_options(spec)));
  const std::vector<std::string> names = model_classes(*dataset, spec);
  log_info("eval: ", name, " (", model.describe(), "); ", describe(plan),
           o.native_resolution ? ", scored at the masks' own size" : "");
  const auto t0 = std::chrono::steady_clock::now();
  metrics::ConfusionMatrix cm(model.num_classes());
  c10::InferenceMode inference;
  const int64_t images = batched(plan, o.native_resolution) ? evaluate_square(model, dataset, plan, spec, o, cm)
                                                            : evaluate_sized(model, *dataset, plan, spec, o, cm);
  EvalSummary summary{cm.compute(), 0, images};
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info("eval ", o.checkpoint.string(), " on ", data.string(), " (validation split, ", images, " images, ",
           summary.seconds, " s)\n", metrics::format_scores(summary.scores, names));
  if (!o.json.empty()) write_file_atomic(o.json, metrics::scores_json(summary.scores, names).dump(2) + "\n");
  return summary;
}

}  // namespace petseg::train
