// The training loop, in the shape of torchvision's references/segmentation/train.py: run_train is a list of named
// set-up steps that fill one TrainContext, then a loop of train_one_epoch -> evaluate -> record_epoch. One optimizer
// for the whole run; the loss is read back from the device only at log intervals; checkpoints after every epoch
// (and on SIGINT/SIGTERM mid-epoch), the best by mIoU kept apart.
#include "train/trainer.h"

#include <ATen/Context.h>
#if __has_include(<c10/cuda/CUDAFunctions.h>)
#include <c10/cuda/CUDAFunctions.h>
#endif
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/check.h"
#include "core/clock.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/synth.h"
#include "fetch/weights_cache.h"
#include "distributed/communicator.h"
#include "distributed/reducer.h"
#include "distributed/step_sync.h"
#include "report/board.h"
#include "report/report.h"
#include "report/visualize.h"
#include "train/checkpoint.h"
#include "train/grad_scaler.h"
#include "train/optimizer.h"
#include "train/profiling.h"
#include "train/progress.h"
#include "train/eval.h"
#include "train/runner.h"
#include "train/step.h"

namespace petseg::train {
namespace {

// PETSEG_SYNC_CHECK=1 (a test hook, tests/gpu): CUDA's sync debug mode is set to "error" around every training step
// that is not a log step, from the third step of an epoch on (the first ones pick cuDNN's algorithms), so any host
// synchronisation there (an .item(), a blocking copy, a size read back) throws naming the operation.
class SyncCheck {
 public:
  explicit SyncCheck(bool on) : on_(on && enabled()) { set(on_ ? 2 : 0); }
  ~SyncCheck() { set(0); }
  static bool enabled() {
    static const bool on = [] {
      const char* v = std::getenv("PETSEG_SYNC_CHECK");
      return v && *v && std::string(v) != "0";
    }();
    return on;
  }

 private:
  void set(int level) {
#if __has_include(<c10/cuda/CUDAFunctions.h>)
    if (on_) c10::cuda::warning_state().set_sync_debug_mode(static_cast<c10::cuda::SyncDebugMode>(level));
#endif
  }
  bool on_;
};

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using report::EpochRecord;

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// What this rank runs on: its device, and the spec's precision with the exec's memory layout.
struct Runtime {
  at::Device device = at::kCPU;
  StepPrecision precision;  // loss_scale unset: the scaler's, set per step
};

// local_rank: the GPU of this rank in a distributed run (one GPU per local rank, as under torchrun).
Runtime make_runtime(const TrainConfig& c, int local_rank = 0) {
  Runtime rt;
  rt.device = resolve_device(c.exec.device, local_rank);
  rt.precision.amp = c.spec.amp != "off";
  rt.precision.dtype = c.spec.amp == "fp16" ? at::kHalf : at::kBFloat16;
  rt.precision.channels_last = c.exec.channels_last;
  return rt;
}


// Averages a scalar tensor (on the run's device) over ranks: one collective on the device, then one host read.
double mean_over_ranks(distributed::Communicator& comm, const at::Tensor& value) {
  at::Tensor t = value.detach().to(at::kDouble).reshape({1}).clone();
  if (comm.world_size() > 1) comm.allreduce_sum(t);
  return comm.to_host(t).item<double>() / comm.world_size();
}

std::shared_ptr<const data::PetDataset> open_split(const fs::path& root, data::Split split, const RunSpec& spec) {
  return std::make_shared<const data::PetDataset>(data::PetDataset::open(root, split, dataset_options(spec)));
}

// Everything one training run holds, built once by run_train's set-up steps and used by the loop.
struct TrainContext {
  TrainConfig config;
  fs::path run_dir;
  fs::path data_root;  // the spec's data set, or the embedded one it names by leaving --data empty
  TrainState state;
  bool resumed = false;
  std::vector<std::string> exec_changes;  // a resume: the execution options that differ from the last start's
  std::vector<EpochRecord> history;

  std::unique_ptr<distributed::Communicator> comm = distributed::make_single_process();
  distributed::WorldInfo world;
  bool lead = true;  // rank 0: logs, writes checkpoints and the report
  Runtime rt;

  std::shared_ptr<const data::PetDataset> train_set, val_set;
  std::vector<std::string> class_names;  // the model's classes, in index order

  model::SegmentationModel net{nullptr};
  std::vector<ParamGroup> param_groups;  // the optimizer's groups and their learning-rate multipliers
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<distributed::GradientSync> grad_sync;
  std::optional<GradScaler> scaler;
  std::unique_ptr<DataParallel> data_parallel;
  std::optional<Runner> own_runner;
  Runner* runner = nullptr;
  TrainStep step;  // what every step runs (train/step.h)

  std::unique_ptr<data::DataLoader> train_loader, val_loader;
  int64_t steps_per_epoch = 0, total_steps = 0;
  std::unique_ptr<report::RunBoard> board;  // rank 0's TensorBoard events (null: --no-tensorboard, other ranks)
};

struct EpochStats {
  double loss = 0;
  int64_t steps = 0;
  int64_t images = 0;
  double seconds = 0;
  report::PhaseTimes times;
  bool interrupted = false;
  int64_t skipped_steps = 0;  // fp16: steps the loss scaler skipped (a gradient was inf/NaN)
};

// ------------------------------------------------------------------ set-up steps

// The spec a resume continues: the saved one. One rule for --resume DIR and --resume auto: a spec option the command
// line names must have the saved value (--epochs may grow); the execution options are this start's own.
RunSpec continued_spec(const RunSpec& saved, const RunSpec& asked, const std::set<std::string>& given,
                       const fs::path& checkpoint) {
  std::set<std::string> compared = given;
  compared.erase("epochs");
  // --data is where the run's data set is on this host (another machine may mount it elsewhere): it may move, and
  // the class-colours file (usually in it) with it.
  compared.erase("data");
  compared.erase("class_colors");
  // A run saved before the spec kept weight names holds the path they resolved to on its host.
  auto resolved_before = [](const fs::path& was, const fs::path& now) { return was.is_absolute() && !now.is_absolute(); };
  if (resolved_before(saved.model.weights, asked.model.weights)) compared.erase("weights");
  if (resolved_before(saved.model.backbone_weights, asked.model.backbone_weights)) compared.erase("backbone_weights");
  // What a start resolves ("auto": the layout found; 0: the data set's classes) matches what it resolved to.
  if (asked.layout == "auto") compared.erase("layout");
  if (asked.model.num_classes == 0) compared.erase("num_classes");
  const std::vector<SpecDifference> changed =
      compared.empty() ? std::vector<SpecDifference>{} : spec_differences(asked, saved, compared);
  const fs::path dir = checkpoint.parent_path();
  PETSEG_CHECK(changed.empty(), "--resume ", dir.string(), ": ", describe(changed, "on this command line", "in that run"),
               ". What a run is stays as it started: drop ", changed.size() == 1 ? "that option" : "those options",
               " to continue it, or start a new run with another --name");
  RunSpec spec = saved;
  if (given.count("epochs")) {
    PETSEG_CHECK(asked.epochs >= saved.epochs, "--resume ", dir.string(), ": --epochs ", asked.epochs,
                 " is fewer than the run's ", saved.epochs, "; a resume may add epochs, not take them away");
    spec.epochs = asked.epochs;
  }
  if (given.count("data")) spec.data = asked.data;
  if (given.count("class_colors")) spec.class_colors = asked.class_colors;
  return spec;
}

// The run folder and configuration: a new run, or the one the resume continues (its saved spec, with this start's
// execution options; what changed since the last start is logged).
void resolve_run(TrainContext& ctx, const TrainRequest& request) {
  ExecOptions exec = request.config.exec;
  std::optional<fs::path> resume_dir = request.resume_dir;
  if (request.resume_auto) {
    PETSEG_CHECK(!resume_dir, "--resume auto takes the run folder from --runs-dir and --name");
    PETSEG_CHECK(!exec.name.empty(), "--resume auto needs --name (the run folder to continue or start)");
    if (fs::exists(exec.runs_dir / exec.name / "last.pt")) resume_dir = exec.runs_dir / exec.name;
  }
  RunSpec spec = request.config.spec;
  if (resume_dir) {
    ctx.run_dir = *resume_dir;
    const fs::path last = ctx.run_dir / "last.pt";
    PETSEG_CHECK(fs::exists(last), "--resume ", ctx.run_dir.string(), ": no last.pt there to resume from");
    PETSEG_CHECK(request.resume_auto || exec.name.empty() || exec.name == ctx.run_dir.filename().string(), "--resume ",
                 ctx.run_dir.string(), " continues the run named ", ctx.run_dir.filename().string(), ", not --name ",
                 exec.name);
    const CheckpointInfo info = read_checkpoint_info(last);
    spec = continued_spec(info.config.spec, spec, request.spec_given, last);
    exec.runs_dir = ctx.run_dir.parent_path();
    exec.name = ctx.run_dir.filename().string();
    ctx.exec_changes = exec_changes(info.config.exec, exec);
    ctx.state = info.state;
    ctx.resumed = true;
  } else {
    PETSEG_CHECK(!exec.distributed || !exec.name.empty(),
                 "--distributed needs --name (every rank must write to the same run folder)");
    if (exec.name.empty()) exec.name = format_now("%Y%m%d-%H%M%S", /*utc=*/false);
    ctx.run_dir = exec.runs_dir / exec.name;
  }
  ctx.config = {spec, exec};
  validate(ctx.config);
  ctx.history = report::history_from_json(ctx.state.history, (ctx.run_dir / "last.pt").string());
}

// The run folder must be writable before any training starts.
void check_writable(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PETSEG_CHECK(!ec, "cannot create the run folder ", dir.string(), ": ", ec.message());
  const fs::path probe = dir / ".petseg-write-test";
  try {
    write_file_atomic(probe, std::string("ok"));
  } catch (const Error& e) {
    PETSEG_FAIL("the run folder ", dir.string(), " is not writable (", e.what(), ")");
  }
  fs::remove(probe, ec);
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
  dopts.timeout = std::chrono::seconds(e.dist_timeout_s);
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

// The process group first (everything after it may be checked across ranks), the threads, the data set, the run
// folder, and the ranks' agreement on the run spec.
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

// The data set's two splits, and the classes the model predicts (from the data set; --num-classes must agree).
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
  if (s.layout == "oxford-pets" && s.ignore_index != RunSpec{}.ignore_index) {
    log_warning("--ignore-index ", s.ignore_index, " is for class-index and colour masks; the pets' trimaps ignore "
                "their border with --border ignore");
  }
  if (s.layout != "folders" && !s.class_colors.empty()) {
    log_warning("--class-colors ", s.class_colors.string(), " is for a folders set with RGB masks; ", s.layout,
                " masks are read as they are");
  }
  check_ranks_read_the_same_data(*ctx.comm, *ctx.train_set, *ctx.val_set, ctx.class_names);
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

// The model (with the checkpoint's values on a resume), the optimizer, DDP's gradient sync, SyncBatchNorm, the
// fp16 loss scaler and the step (eager, TorchScript or DataParallel).
void build_model_and_optimizer(TrainContext& ctx) {
  const TrainConfig& c = ctx.config;
  ctx.net = ctx.resumed ? model::build_segmentation_architecture(c.spec.model)
                        : build_named_model(c.spec.model, c.exec.weights_mirror).model;
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
  if (s.max_steps_per_epoch > 0) ctx.steps_per_epoch = std::min<int64_t>(ctx.steps_per_epoch, s.max_steps_per_epoch);
  PETSEG_CHECK(ctx.steps_per_epoch > 0, "no full batch of ", s.batch_size,
               " in the training split; lower --batch-size");
  ctx.total_steps = ctx.steps_per_epoch * s.epochs;
}

// The start of the run in its folder: the config, and metrics.jsonl as the checkpoint's history (epochs logged
// after the last checkpoint by a run that was killed are dropped, as the resume trains them again).
void write_run_start(TrainContext& ctx) {
  const RunSpec& s = ctx.config.spec;
  log_info("train: ", s.epochs, " epochs x ", ctx.steps_per_epoch, " steps of ", s.batch_size,
           ctx.comm->world_size() > 1
               ? detail::str_cat(" per rank x ", ctx.comm->world_size(), " ranks (", ctx.comm->backend(), ")")
               : "",
           " at ", s.image_size, "x", s.image_size, ", ", s.optimizer, " lr ", s.lr, ", ", runtime_summary(),
           ", device ", ctx.rt.device.str(), ctx.rt.precision.amp ? ", autocast " + s.amp : "",
           ctx.config.exec.torch_script ? ", TorchScript" : "", "; run folder ", ctx.run_dir.string());
  if (!ctx.lead) return;
  write_file_atomic(ctx.run_dir / "config.json", to_json(ctx.config) + "\n");
  if (ctx.config.exec.tensorboard) {
    const fs::path dir = ctx.config.exec.tensorboard_dir.empty() ? ctx.run_dir / "tb" : ctx.config.exec.tensorboard_dir;
    // The session starts at the first step this start writes: TensorBoard drops what earlier starts wrote from there
    // on, and keeps what they wrote up to the checkpoint (the last finished epoch's scalars and grid among it).
    ctx.board = std::make_unique<report::RunBoard>(dir, ctx.state.global_step + 1, to_json(ctx.config));
    if (!ctx.board->file().empty()) log_info("TensorBoard: ", ctx.board->file().string());
  }
  std::string lines;
  for (const auto& record : ctx.history) lines += report::to_json_line(record) + "\n";
  write_file_atomic(ctx.run_dir / "metrics.jsonl", lines);
}

// ------------------------------------------------------------------ the loop

// The batch as a step needs it: a lone sample (the loader skipped broken ones) used twice, as BatchNorm cannot train
// on one and ranks must stay in step. Empty when a one-process step has nothing left to train on.
std::optional<data::Batch> usable_batch(data::Batch batch, const TrainContext& ctx, int64_t epoch, int64_t step) {
  if (batch.images.size(0) >= 2) return batch;
  if (batch.images.size(0) == 0 && ctx.comm->world_size() == 1) {
    log_warning("epoch ", epoch + 1, " step ", step + 1, ": every sample of the batch was unreadable; step skipped");
    return std::nullopt;
  }
  PETSEG_CHECK(batch.images.size(0) == 1, "rank ", ctx.comm->rank(), ": every sample of the batch at epoch ", epoch + 1,
               " step ", step + 1, " was unreadable (see the warnings); run petseg prepare on the data set");
  warn_once("lone-sample", "a batch kept a single sample after skipping broken ones: it is used twice");
  batch.images = batch.images.repeat({2, 1, 1, 1});
  batch.masks = batch.masks.repeat({2, 1, 1});
  return batch;
}

// One optimizer step on `batch` at the scheduled learning rate; returns the detached (unscaled) loss.
at::Tensor train_step(TrainContext& ctx, const data::Batch& batch, PhaseTimer& timer) {
  const double lr = learning_rate(ctx.config.spec, ctx.state.global_step, ctx.total_steps);
  set_learning_rates(*ctx.optimizer, ctx.param_groups, lr);
  return ctx.step(batch.images, batch.masks, &timer);
}

// `profiling`: --profile's steps, which synchronise CUDA at every phase so that their times are the GPU's; the other
// steps never wait for the device (their CUDA phase times are launch times, and say so).
EpochStats train_one_epoch(TrainContext& ctx, int64_t epoch, int64_t steps_in_epoch, TrainState& state,
                           bool profiling = false) {
  const RunSpec& c = ctx.config.spec;
  const ExecOptions& e = ctx.config.exec;
  EpochStats st;
  ctx.runner->model()->train();
  ctx.train_loader->start_epoch(epoch, state.epoch_step);
  Progress progress(epoch, c.epochs, steps_in_epoch);
  PhaseTimer timer(/*synchronize_cuda=*/profiling && ctx.rt.device.is_cuda());
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().device(ctx.rt.device));
  at::Tensor interval_sum = at::zeros({}, at::TensorOptions().device(ctx.rt.device));
  int64_t interval_steps = 0;
  distributed::StepSync sync(*ctx.comm, e.log_interval, steps_in_epoch, /*agree_every_step=*/ctx.comm->backend() == "gloo");
  bool signal_seen = false;
  const auto t_epoch = Clock::now();
  const int64_t first_step = state.epoch_step;
  for (int64_t step = first_step; step < steps_in_epoch; ++step) {
    const double wait0 = ctx.train_loader->stats().wait_seconds;
    auto next = ctx.train_loader->next();
    if (!next) break;
    timer.add(&report::PhaseTimes::data, ctx.train_loader->stats().wait_seconds - wait0);
    const std::optional<data::Batch> batch = usable_batch(std::move(*next), ctx, epoch, step);
    if (!batch) continue;
    at::Tensor loss;
    {
      SyncCheck check(ctx.rt.device.is_cuda() && !profiling && step >= first_step + 2 && !sync.is_log_step(step));
      loss = train_step(ctx, *batch, timer);
    }
    loss_sum += loss;
    interval_sum += loss;
    ++interval_steps;
    ++st.steps;
    st.images += batch->images.size(0);
    ++state.global_step;
    state.epoch_step = step + 1;
    // --stop-after falls on the same step on every rank; a signal is agreed on at log steps only, so that the steps
    // between make no host sync (StepSync).
    const bool signalled = g_stop;
    if (signalled && !signal_seen) {
      signal_seen = true;
      if (ctx.comm->world_size() > 1 && ctx.comm->backend() != "gloo") {
        log_warning("rank ", ctx.comm->rank(), ": stop signal: every rank saves and stops together after step ",
                    sync.next_log_step(step) + 1, " of this epoch (the next log step: ranks agree on a stop only ",
                    "every --log-interval ", e.log_interval, " steps, to keep host syncs out of the others)");
      }
    }
    const bool limit_reached = e.stop_after_steps > 0 && state.global_step >= e.stop_after_steps;
    const distributed::StepSync::Outcome sync_point =
        sync.after_step(step, interval_sum, interval_steps, limit_reached, signalled);
    const bool stopping = sync_point.stop;
    if (sync_point.log) {
      const double mean = sync_point.mean_loss;
      PETSEG_CHECK(std::isfinite(mean), "the loss became ", mean, " at epoch ", epoch + 1, " step ", step + 1,
                   "; stopping. The last good checkpoint is kept; try a lower --lr");
      interval_sum.zero_();
      interval_steps = 0;
      const double images_per_s = st.images / std::max(1e-9, since(t_epoch));
      progress.update(step + 1, mean, images_per_s, double(steps_in_epoch - step - 1) * c.batch_size);
      if (ctx.board) {
        ctx.board->log_step(state.global_step, mean, learning_rate(c, state.global_step - 1, ctx.total_steps),
                            images_per_s * ctx.comm->world_size(), ctx.scaler ? ctx.scaler->current_scale() : 0.0);
      }
    }
    if (stopping) {
      st.interrupted = true;
      break;
    }
  }
  progress.finish();
  st.seconds = since(t_epoch);
  st.times = timer.times();
  st.times.launch_times = ctx.rt.device.is_cuda() && !profiling;
  if (ctx.scaler) st.skipped_steps = ctx.scaler->take_skipped_steps();  // one read per epoch
  sync_optimizer_state(*ctx.optimizer);  // fused Adam's step counts, before record_epoch or an interruption saves
  const double epoch_loss = mean_over_ranks(*ctx.comm, loss_sum / double(std::max<int64_t>(1, st.steps)));
  st.loss = st.steps ? epoch_loss : NAN;
  return st;
}

// --profile N: the first N steps of the run as a separate short pass through the same loop, recorded by rank 0.
void profile_steps(TrainContext& ctx, int64_t epoch) {
  const fs::path trace = ctx.run_dir / "trace.json";
  TrainState probe = ctx.state;
  {
    std::optional<TraceRecorder> recorder;
    if (ctx.lead) recorder.emplace(trace, ctx.rt.device.is_cuda());
    train_one_epoch(ctx, epoch, std::min<int64_t>(ctx.config.exec.profile_steps, ctx.steps_per_epoch), probe,
                    /*profiling=*/true);
    if (recorder) recorder->save();
  }
  if (ctx.lead) {
    const std::string table = top_ops_table(trace, 15);
    write_file_atomic(ctx.run_dir / "profile_top_ops.txt", table);
    log_info("profile of ", ctx.config.exec.profile_steps, " steps: ", trace.string(),
             " (open in Perfetto or chrome://tracing)\n", table);
  }
  ctx.state = probe;
}

// What the scaler keeps in a checkpoint.
void keep_scaler_state(TrainContext& ctx) {
  if (!ctx.scaler) return;
  ctx.state.loss_scale = ctx.scaler->current_scale();
  ctx.state.loss_scale_growth_tracker = ctx.scaler->growth_tracker();
}

// After an epoch (rank 0): the prediction grid, metrics.jsonl, the log, the checkpoints and the report.
void record_epoch(TrainContext& ctx, int64_t epoch, const EpochStats& stats, const EvalResult& ev) {
  const RunSpec& c = ctx.config.spec;
  EpochRecord r;
  r.epoch = epoch + 1;
  r.step = ctx.state.global_step;
  r.train_loss = stats.loss;
  r.lr = learning_rate(c, ctx.state.global_step, ctx.total_steps);
  r.miou = ev.scores.mean_iou;
  r.pixel_accuracy = ev.scores.pixel_accuracy;
  r.iou = ev.scores.iou;
  r.class_accuracy = ev.scores.class_accuracy;
  r.class_names = ctx.class_names;
  r.images_per_s = ctx.comm->world_size() * stats.images / std::max(1e-9, stats.seconds);
  r.ranks = ctx.comm->world_size();
  r.seconds = stats.seconds;
  r.loss_scale = ctx.state.loss_scale;
  r.skipped_steps = stats.skipped_steps;
  r.times = stats.times;
  r.times.eval = ev.seconds;
  if (!ctx.lead) return;
  const fs::path grid = ctx.run_dir / "predictions" / ("epoch_" + std::to_string(epoch + 1) + ".png");
  fs::create_directories(grid.parent_path());
  std::optional<image::Image> grid_image;
  if (ev.vis_images.defined()) {
    grid_image = report::prediction_grid(ev.vis_images, ev.vis_targets, ev.vis_preds,
                                         report::palette_for(c.layout, int(ctx.class_names.size())));
    report::write_png(grid, *grid_image);
  }
  if (ctx.board) ctx.board->log_epoch(r.step, r, grid_image ? &*grid_image : nullptr);
  ctx.history.push_back(r);
  {
    std::ofstream out(ctx.run_dir / "metrics.jsonl", std::ios::app);
    out << report::to_json_line(r) << "\n";
    PETSEG_CHECK(out.good(), "cannot append to ", (ctx.run_dir / "metrics.jsonl").string());
  }
  log_info("epoch ", epoch + 1, "/", c.epochs, ": train loss ", stats.loss, ", ", r.images_per_s, " img/s (data ",
           std::lround(100 * stats.times.data / std::max(1e-9, stats.seconds)), "% of the time)\n",
           metrics::format_scores(ev.scores, r.class_names));
  ctx.state.history = report::history_to_json(ctx.history);
  const bool best = ev.scores.mean_iou > ctx.state.best_miou;
  if (best) ctx.state.best_miou = ev.scores.mean_iou;
  if (ctx.config.exec.checkpoints) {
    save_checkpoint(ctx.run_dir / "last.pt", *ctx.net, *ctx.optimizer, ctx.state, ctx.config);
    if (best) save_checkpoint(ctx.run_dir / "best.pt", *ctx.net, *ctx.optimizer, ctx.state, ctx.config);
  }
  report::write_report(ctx.run_dir, ctx.history, to_json(ctx.config), grid);
}

// Ctrl-C or SIGTERM mid-epoch: rank 0 saves where every rank stopped, then all exit together.
int save_interrupted(TrainContext& ctx, int64_t epoch) {
  if (ctx.lead && ctx.config.exec.checkpoints) {
    save_checkpoint(ctx.run_dir / "last.pt", *ctx.net, *ctx.optimizer, ctx.state, ctx.config);
    log_warning("interrupted: saved ", (ctx.run_dir / "last.pt").string(), " at epoch ", epoch + 1, " step ",
                ctx.state.epoch_step, "; continue with petseg train --resume ", ctx.run_dir.string());
  }
  ctx.comm->barrier();  // the checkpoint exists before any rank exits
  return kExitInterrupted;
}

}  // namespace

double learning_rate(const RunSpec& c, int64_t step, int64_t total_steps) {
  if (step < c.warmup_iters) {
    const double start = 0.01;
    return c.lr * (start + (1.0 - start) * double(step) / c.warmup_iters);
  }
  const double span = std::max<int64_t>(1, total_steps - c.warmup_iters);
  const double progress = std::min(1.0, double(step - c.warmup_iters) / span);
  return c.lr * std::pow(1.0 - progress, 0.9);
}

std::vector<ParamGroup> param_groups_of(model::SegmentationModel& model, const RunSpec& spec) {
  const std::string aux = model::model_info(spec.model).aux_prefix;
  std::vector<ParamGroup> groups(2);
  groups[1].lr_mult = spec.aux_lr_mult;
  for (const auto& p : model->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    const bool in_aux = !aux.empty() && p.key().rfind(aux, 0) == 0;
    groups[in_aux ? 1 : 0].params.push_back(p.value());
  }
  return groups;
}

model::BuiltSegmentationModel build_named_model(model::ModelConfig mc, const std::string& mirror) {
  const model::ModelInfo& info = model::model_info(mc);
  const model::BackboneInfo& backbone = model::find_backbone(mc.backbone);
  mc.weights =
      fetch::resolve_weights(mc.weights.string(), fetch::WeightsRole::kModel, {info.name, info.coco_weights}, mirror);
  mc.backbone_weights = fetch::resolve_weights(mc.backbone_weights.string(), fetch::WeightsRole::kBackbone,
                                               {backbone.name, backbone.imagenet_weights}, mirror);
  model::BuiltSegmentationModel built = model::build_segmentation_model(mc);
  for (const auto& line : model::describe(built, mc)) log_info(line);
  return built;
}

int run_train(const TrainRequest& request) {
  TrainContext ctx;
  resolve_run(ctx, request);
  setup_distribution(ctx);
  open_data(ctx);
  build_model_and_optimizer(ctx);
  make_loaders(ctx);
  write_run_start(ctx);

  g_stop = false;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  const RunSpec& spec = ctx.config.spec;
  for (int64_t epoch = ctx.state.epoch; epoch < spec.epochs; ++epoch) {
    if (ctx.config.exec.profile_steps > 0 && epoch == ctx.state.epoch && !ctx.resumed) profile_steps(ctx, epoch);
    const EpochStats stats = train_one_epoch(ctx, epoch, ctx.steps_per_epoch, ctx.state);
    keep_scaler_state(ctx);
    if (stats.interrupted) return save_interrupted(ctx, epoch);
    const EvalResult ev = evaluate(*ctx.runner, *ctx.val_loader, ctx.rt.device, ctx.rt.precision,
                                   spec.model.num_classes, spec.eval_max_batches, ctx.config.exec.vis_samples,
                                   *ctx.comm);
    ctx.state.epoch = epoch + 1;
    ctx.state.epoch_step = 0;
    record_epoch(ctx, epoch, stats, ev);
  }
  ctx.comm->barrier();
  log_info("done: best mIoU ", 100 * ctx.state.best_miou, " %; checkpoint ",
           ctx.config.exec.checkpoints ? (ctx.run_dir / "best.pt").string() : "none (--no-checkpoints)", ", report ",
           (ctx.run_dir / "report.html").string());
  return 0;
}

}  // namespace petseg::train
