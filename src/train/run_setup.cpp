// The set-up steps of a training run, in the order run_train takes them: the process group and device, the data
// set, the model with its optimizer and the step, the loaders.
#include <ATen/Context.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <thread>

#include "core/check.h"
#include "core/device.h"
#include "core/log.h"
#include "data/synth.h"
#include "model/named_model.h"
#include "train/config.h"
#include "train/run_context.h"
#include "train/schedule.h"

namespace petseg::train {
namespace {

// local_rank: the GPU of this rank in a distributed run (one GPU per local rank, as under torchrun).
Runtime make_runtime(const TrainConfig& c, int local_rank = 0) {
  Runtime rt;
  rt.device = resolve_device(c.exec.device, local_rank);
  rt.precision.amp = c.spec.amp != "off";
  rt.precision.dtype = c.spec.amp == "fp16" ? at::kHalf : at::kBFloat16;
  rt.precision.channels_last = c.exec.channels_last;
  return rt;
}

std::shared_ptr<const data::SegmentationDataset> open_split(const fs::path& root, data::Split split, const RunSpec& spec) {
  return std::make_shared<const data::SegmentationDataset>(data::SegmentationDataset::open(root, split, dataset_options(spec)));
}

// The process group and this rank's device; the local ranks split the cores.
void start_process_group(TrainContext& ctx) {
  ExecOptions& e = ctx.config.exec;
  ctx.world = distributed::world_from_env();
  log_info(distributed::describe(ctx.world));
  // This rank's GPU is the process's current device before any CUDA work or process group, whatever the backend.
  const c10::Device device = resolve_device(e.device, ctx.world.local_rank);
  set_current_device(device);
  distributed::DistOptions dopts;
  dopts.backend = e.backend;
  dopts.timeout = std::chrono::seconds(e.dist_timeout);
  ctx.comm = distributed::make_c10d(ctx.world, dopts, device.is_cuda());
  // As torchrun's one thread per rank on a machine with as many cores as ranks. (libtorch 1.13 needed 2 threads a
  // rank: at one thread it sent most convolutions to slow kernels; 2.11 scales 1 -> 2 threads by 1.85x on a
  // DeepLabV3 train step, so fewer threads per rank no longer lose.)
  const int local = std::max(1, ctx.world.local_world_size);
  const int cores = int(std::thread::hardware_concurrency());
  if (e.threads == 0) e.threads = std::max(1, cores / local);
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  if (e.threads * local > cores && !(wait && std::string(wait) == "PASSIVE") && ctx.comm->rank() == 0) {
    log_warning(
        "ranks x threads exceed the cores: start the ranks with OMP_WAIT_POLICY=PASSIVE (petseg "
        "--nproc-per-node does) or lower --threads");
  }
}

// --data-parallel: every visible GPU in one process, when there are 2 or more (and not under DDP).
void setup_data_parallel(TrainContext& ctx) {
  const TrainConfig& c = ctx.config;
  if (!c.exec.data_parallel) return;
  const std::vector<at::Device> devices = ctx.rt.device.is_cuda() ? data_parallel_devices() : std::vector<at::Device>{};
  if (ctx.comm->world_size() > 1) {
    if (ctx.lead)
      log_warning("--data-parallel is ignored under --distributed: each rank drives one device, as DDP should");
  } else if (devices.size() < 2) {
    log_warning("--data-parallel: ", ctx.rt.device.is_cuda() ? torch::cuda::device_count() : 0,
                " CUDA device(s) here and DataParallel needs 2 or more; training on one device (", ctx.rt.device.str(),
                ")");
  } else {
    ctx.data_parallel = std::make_unique<DataParallel>(ctx.net, c.spec.model, devices, c.exec.torch_script,
                                                       ctx.rt.precision.channels_last);
    log_info("--data-parallel: each batch split over ", devices.size(), " GPUs");
  }
}

// SyncBatchNorm over the ranks (--sync-bn), and the fp16 loss scaler.
void setup_sync_bn_and_scaler(TrainContext& ctx) {
  if (ctx.config.spec.sync_bn && ctx.comm->world_size() > 1) {
    distributed::Communicator* comm = ctx.comm.get();
    const int n = model::convert_sync_batchnorm(*ctx.net, [comm](at::Tensor& t) { comm->allreduce_sum(t); });
    log_info("--sync-bn: ", n, " BatchNorm layers normalise over the batches of all ", comm->world_size(), " ranks",
             ctx.net->backbone_frozen() ? " (the frozen backbone's stay in eval mode)" : "");
  } else if (ctx.config.spec.sync_bn) {
    log_warning("--sync-bn: one process, so BatchNorm already sees the whole batch");
  }
  if (ctx.rt.precision.amp && ctx.rt.precision.dtype == at::kHalf) {
    ctx.scaler.emplace(ctx.rt.device);
    if (ctx.state.loss_scale > 0) ctx.scaler->load(ctx.state.loss_scale, ctx.state.loss_scale_growth_tracker);
    log_info("--amp fp16: dynamic loss scaling (torch.amp.GradScaler's rules), scale ", ctx.scaler->current_scale());
  }
}

}  // namespace

void setup_distribution(TrainContext& ctx) {
  TrainConfig& c = ctx.config;
  if (c.exec.distributed) start_process_group(ctx);
  ctx.lead = ctx.comm->rank() == 0;
  if (!ctx.lead) set_log_level(LogLevel::kWarning);
  ctx.data_root = c.spec.data;
  if (ctx.data_root.empty()) {
    // The embedded default set is made once, by rank 0, before the others look for it.
    if (ctx.lead) ctx.data_root = data::default_dataset();
    ctx.comm->barrier();
    if (!ctx.lead) ctx.data_root = data::default_dataset();
  }
  if (ctx.resumed) {
    log_info("resuming ", ctx.run_dir.string(), " at epoch ", ctx.state.epoch + 1, ", step ", ctx.state.epoch_step);
    std::string list;
    for (const std::string& change : ctx.exec_changes) list += (list.empty() ? "" : ", ") + change;
    if (!list.empty()) log_info("this start changes how the run runs: ", list);
  } else if (ctx.lead) {
    PETSEG_CHECK(!fs::exists(ctx.run_dir / "last.pt"), ctx.run_dir.string(),
                 " already holds a run; continue it with --resume ", ctx.run_dir.string(), " or choose another --name");
  }
  if (ctx.lead) check_writable(ctx.run_dir);
  check_ranks_agree(*ctx.comm, c);
  configure_threads(c.exec.threads);
  ctx.rt = make_runtime(c, ctx.world.local_rank);
  if (ctx.rt.device.is_cuda()) {
    set_current_device(ctx.rt.device);
    at::globalContext().setBenchmarkCuDNN(c.exec.cudnn_benchmark);
    // TF32 as PyTorch's defaults: convolutions may use it, matmuls stay "highest" (fp32); the benches' Python side
    // runs with the same settings.
    log_info("CUDA: ", ctx.rt.device.str(), ", cuDNN benchmark ", c.exec.cudnn_benchmark ? "on" : "off",
             ", TF32 convolutions ", at::globalContext().allowTF32CuDNN() ? "on" : "off", ", TF32 matmuls ",
             at::globalContext().allowTF32CuBLAS() ? "on" : "off", ", pinned memory ",
             c.exec.loader.pin_memory ? "on" : "off");
  }
  at::manual_seed(c.spec.seed);
}

void open_data(TrainContext& ctx) {
  RunSpec& s = ctx.config.spec;
  ctx.train_set = open_split(ctx.data_root, data::Split::kTrainval, s);
  ctx.val_set = open_split(ctx.data_root, data::Split::kTest, s);
  ctx.class_names = model_classes(*ctx.train_set, s);
  // As the class count, the layout "auto" found is what the run is: saved, and kept by every resume.
  s.model.num_classes = int64_t(ctx.class_names.size());
  s.layout = ctx.train_set->layout();
  std::string names;
  for (const std::string& n : ctx.class_names) names += (names.empty() ? "" : ", ") + n;
  log_info("data: ", ctx.data_root.string(), " (", ctx.train_set->layout(), "), ", ctx.train_set->size(),
           " training and ", ctx.val_set->size(), " validation samples, ", ctx.class_names.size(), " classes: ", names);
  ctx.layout = &data::layout_named(s.layout);
  if (!ctx.layout->takes_ignore_index() && s.ignore_index != RunSpec{}.ignore_index) {
    log_warning("--ignore-index ", s.ignore_index, " is for class-index and colour masks; ", ctx.layout->title(),
                " masks leave it out", ctx.layout->has_trimap_border() ? " (their border: --border ignore)" : "");
  }
  if (!ctx.layout->takes_class_colors() && !s.class_colors.empty()) {
    log_warning("--class-colors ", s.class_colors.string(), " is for a folders set with RGB masks; ",
                ctx.layout->title(), " masks are read as they are");
  }
  check_ranks_read_the_same_data(*ctx.comm, *ctx.train_set, *ctx.val_set, ctx.class_names);
}

void build_model_and_optimizer(TrainContext& ctx) {
  const TrainConfig& c = ctx.config;
  ctx.net = ctx.resumed ? model::build_segmentation_architecture(c.spec.model)
                        : model::build_named_model(c.spec.model, c.exec.mirror).model;
  ctx.net->to(ctx.rt.device);
  if (ctx.rt.precision.channels_last) model::convert_to_channels_last(*ctx.net);
  ctx.param_groups = param_groups_of(ctx.net, c.spec);
  ctx.optimizer = make_optimizer(c.spec, ctx.param_groups);
  if (!ctx.param_groups[1].params.empty()) {
    log_info("optimizer: ", c.spec.optimizer, ", ", ctx.param_groups[0].params.size(), " tensors at lr ", c.spec.lr,
             ", the aux head's ", ctx.param_groups[1].params.size(), " at lr x ", c.spec.aux_lr_mult, " (--aux-lr-mult)");
  } else if (c.spec.aux_lr_mult != RunSpec{}.aux_lr_mult && c.spec.aux_lr_mult != 1) {
    log_warning("--aux-lr-mult ", c.spec.aux_lr_mult, " has nothing to scale: the model has no aux head",
                model::model_info(c.spec.model).aux_prefix.empty() ? "" : " (--aux-loss builds it)");
  }
  if (ctx.resumed) {
    const bool rank_on_cuda = ctx.comm->world_size() > 1 && ctx.rt.device.is_cuda();
    load_checkpoint(ctx.run_dir / "last.pt", *ctx.net, ctx.optimizer.get(), rank_on_cuda ? ctx.rt.device.index() : -1);
  }
  std::vector<at::Tensor> trained;
  for (const auto& group : ctx.optimizer->param_groups()) {
    trained.insert(trained.end(), group.params().begin(), group.params().end());
  }
  ctx.grad_sync = std::make_unique<distributed::GradientSync>(*ctx.comm, trained);
  std::vector<at::Tensor> everything = ctx.net->parameters();
  for (auto& b : ctx.net->buffers()) everything.push_back(b);
  ctx.grad_sync->broadcast_parameters(everything);  // rank 0's weights everywhere, as DDP does at start
  setup_sync_bn_and_scaler(ctx);
  setup_data_parallel(ctx);
  if (!ctx.data_parallel) ctx.own_runner.emplace(ctx.net, c.exec.torch_script);
  ctx.runner = ctx.data_parallel ? &ctx.data_parallel->primary() : &*ctx.own_runner;
  TrainStep& step = ctx.step;
  step.device = ctx.rt.device;
  step.aux_weight = c.spec.aux_weight;
  step.precision = ctx.rt.precision;
  step.runner = ctx.runner;
  step.data_parallel = ctx.data_parallel.get();
  step.grad_sync = ctx.comm->world_size() > 1 ? ctx.grad_sync.get() : nullptr;
  step.optimizer = ctx.optimizer.get();
  step.scaler = ctx.scaler ? &*ctx.scaler : nullptr;
}

void make_loaders(TrainContext& ctx) {
  const RunSpec& s = ctx.config.spec;
  const bool cuda = ctx.rt.device.is_cuda();
  data::LoaderOptions train_opts = loader_options(s, ctx.config.exec.loader, /*train=*/true, cuda);
  data::LoaderOptions val_opts = loader_options(s, ctx.config.exec.loader, /*train=*/false, cuda);
  train_opts.rank = val_opts.rank = ctx.comm->rank();
  train_opts.world_size = val_opts.world_size = ctx.comm->world_size();
  ctx.train_loader = std::make_unique<data::DataLoader>(ctx.train_set, train_opts);
  ctx.val_loader = std::make_unique<data::DataLoader>(ctx.val_set, val_opts);
  ctx.steps_per_epoch = ctx.train_loader->batches_per_epoch();
  if (s.max_steps > 0) ctx.steps_per_epoch = std::min<int64_t>(ctx.steps_per_epoch, s.max_steps);
  PETSEG_CHECK(ctx.steps_per_epoch > 0, "no full batch of ", s.batch_size,
               " in the training split; lower --batch-size");
  ctx.total_steps = ctx.steps_per_epoch * s.epochs;
}

}  // namespace petseg::train
