// evaluate (the epoch's validation pass) and run_eval (`petseg eval`).
#include "train/eval.h"

#include <ATen/ops/cat.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <chrono>

#include "core/autocast.h"
#include "core/device.h"
#include "core/log.h"
#include "data/layout.h"
#include "data/loader.h"
#include "data/synth.h"
#include "distributed/communicator.h"
#include "train/checkpoint.h"
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

EvalSummary run_eval(const EvalOptions& o) {
  const std::filesystem::path& checkpoint = o.checkpoint;
  CheckpointInfo info;
  model::SegmentationModel net = load_checkpoint_model(checkpoint, &info);
  const RunSpec& spec = info.config.spec;
  std::filesystem::path data = o.data.empty() ? spec.data : o.data;
  if (data.empty()) data = data::default_dataset();
  const at::Device device = resolve_device(o.device);
  const StepPrecision precision{spec.amp != "off", spec.amp == "fp16" ? at::kHalf : at::kBFloat16, o.channels_last,
                                {}};
  net->to(device);
  if (precision.channels_last) model::convert_to_channels_last(*net);
  Runner runner(net, o.torch_script);
  auto dataset =
      std::make_shared<const data::SegmentationDataset>(data::SegmentationDataset::open(data, data::Split::kTest, dataset_options(spec)));
  const std::vector<std::string> names = model_classes(*dataset, spec);
  data::DataLoader loader(dataset, loader_options(spec, o.loader, /*train=*/false, device.is_cuda()));
  auto single = distributed::make_single_process();
  const EvalResult ev = evaluate(runner, loader, device, precision, spec.model.num_classes, 0, 0, *single);
  log_info("eval ", checkpoint.string(), " on ", data.string(), " (test split, ", ev.images, " images, ", ev.seconds,
           " s)\n", metrics::format_scores(ev.scores, names));
  return {ev.scores, ev.seconds, ev.images};
}

}  // namespace petseg::train
