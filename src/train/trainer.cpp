// The training loop. One optimizer for the whole run; loss read back from the device only at log intervals;
// checkpoints after every epoch (and on SIGINT/SIGTERM mid-epoch), the best by mIoU kept apart.
#include "train/trainer.h"

#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <unistd.h>
#include <csignal>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/autocast.h"
#include "core/check.h"
#include "core/clock.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/synth.h"
#include "dist/communicator.h"
#include "model/torchscript.h"
#include "report/report.h"
#include "report/visualize.h"
#include "train/checkpoint.h"
#include "train/grad_scaler.h"
#include "train/profiling.h"
#include "train/runner.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Runtime {
  at::Device device = at::kCPU;
  bool amp = false;
  at::ScalarType amp_dtype = at::kBFloat16;
  bool channels_last = false;
  bool sync_timing = false;  // synchronize CUDA around phases (only when profiling)
};

// local_rank: the GPU of this rank in a distributed run (one GPU per local rank, as under torchrun).
Runtime make_runtime(const TrainConfig& c, int local_rank = 0) {
  Runtime rt;
  rt.device = resolve_device(c.device, local_rank);
  rt.amp = c.amp != "off";
  rt.amp_dtype = c.amp == "fp16" ? at::kHalf : at::kBFloat16;
  rt.channels_last = c.channels_last;
  rt.sync_timing = c.profile_steps > 0 && rt.device.is_cuda();
  return rt;
}

void sync_device(const Runtime& rt) {
  if (rt.sync_timing) torch::cuda::synchronize();
}

// torchvision's reference schedule: optional linear warm-up, then polynomial decay (power 0.9) per iteration.
double learning_rate(const TrainConfig& c, int64_t step, int64_t total_steps) {
  if (step < c.warmup_iters) {
    const double start = 0.01;
    return c.lr * (start + (1.0 - start) * double(step) / c.warmup_iters);
  }
  const double span = std::max<int64_t>(1, total_steps - c.warmup_iters);
  const double progress = std::min(1.0, double(step - c.warmup_iters) / span);
  return c.lr * std::pow(1.0 - progress, 0.9);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& c, model::DeepLabV3& m) {
  std::vector<at::Tensor> params;
  for (auto& p : m->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  if (c.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
}

// A progress bar on a terminal, a plain line per log interval otherwise.
class Progress {
 public:
  Progress(int64_t epoch, int64_t epochs, int64_t steps) : epoch_(epoch), epochs_(epochs), steps_(steps) {}
  void update(int64_t step, double loss, double images_per_s, bool log_line) {
    const double eta = images_per_s > 0 ? remaining_images_ / images_per_s : 0;
    std::ostringstream os;
    os << std::fixed << "epoch " << epoch_ + 1 << "/" << epochs_;
    if (tty_) {
      const int width = 24, done = int(width * step / std::max<int64_t>(1, steps_));
      os << " [" << std::string(done, '#') << std::string(width - done, '.') << "]";
    }
    os << " step " << step << "/" << steps_ << " loss " << std::setprecision(4) << loss << " " << std::setprecision(1)
       << images_per_s << " img/s ETA " << int(eta) / 60 << ":" << std::setw(2) << std::setfill('0') << int(eta) % 60;
    if (tty_) {
      std::fprintf(stderr, "\r%s\033[K", os.str().c_str());
      std::fflush(stderr);
    } else if (log_line) {
      log_info(os.str());
    }
  }
  void set_remaining_images(double n) { remaining_images_ = n; }
  void finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  int64_t epoch_, epochs_, steps_;
  double remaining_images_ = 0;
  bool tty_ = ::isatty(STDERR_FILENO) == 1;
};

struct EpochStats {
  double loss = 0;
  int64_t steps = 0;
  int64_t images = 0;
  double seconds = 0;
  PhaseTimes times;
  bool interrupted = false;
  int64_t skipped_steps = 0;  // fp16: steps the loss scaler skipped (a gradient was inf/NaN)
};

// Averages a scalar over ranks (a no-op in one process).
double mean_over_ranks(dist::Communicator& comm, double value) {
  if (comm.world_size() == 1) return value;
  at::Tensor t = at::full({1}, value, at::kDouble);
  comm.allreduce_sum(t);
  return t.item<double>() / comm.world_size();
}

// True on every rank when any rank was asked to stop, so all ranks stop after the same step.
bool any_rank_stops(dist::Communicator& comm, bool mine) {
  if (comm.world_size() == 1) return mine;
  at::Tensor t = at::full({1}, mine ? 1.0f : 0.0f);
  comm.allreduce_sum(t);
  return t.item<float>() > 0;
}

EpochStats train_one_epoch(Runner& runner, torch::optim::Optimizer& opt, data::DataLoader& loader, int64_t epoch,
                           int64_t steps_in_epoch, TrainState& state, const TrainConfig& c, const Runtime& rt,
                           int64_t total_steps, dist::Communicator& comm, dist::GradientSync& sync,
                           DataParallel* data_parallel, GradScaler* scaler) {
  EpochStats st;
  runner.model()->train();
  loader.start_epoch(epoch, state.epoch_step);
  Progress progress(epoch, c.epochs, steps_in_epoch);
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().device(rt.device));
  at::Tensor interval_sum = at::zeros({}, at::TensorOptions().device(rt.device));
  int64_t interval_steps = 0;
  const auto t_epoch = Clock::now();
  double wait0 = loader.stats().wait_seconds;
  for (int64_t step = state.epoch_step; step < steps_in_epoch; ++step) {
    auto batch = loader.next();
    if (!batch) break;
    const double wait = loader.stats().wait_seconds;
    st.times.data += wait - wait0;
    wait0 = wait;
    if (batch->images.size(0) < 2) {
      // The loader skipped broken samples (with a warning each). BatchNorm cannot train on one sample and
      // ranks must stay in step, so a lone sample is used twice; a batch with none is skipped in one process.
      if (batch->images.size(0) == 0 && comm.world_size() == 1) {
        log_warning("epoch ", epoch + 1, " step ", step + 1,
                    ": every sample of the batch was unreadable; step skipped");
        continue;
      }
      PETSEG_CHECK(batch->images.size(0) == 1, "rank ", comm.rank(), ": every sample of the batch at epoch ", epoch + 1,
                   " step ", step + 1, " was unreadable (see the warnings); run petseg prepare on the data set");
      warn_once("lone-sample", "a batch kept a single sample after skipping broken ones: it is used twice");
      batch->images = batch->images.repeat({2, 1, 1, 1});
      batch->masks = batch->masks.repeat({2, 1, 1});
    }

    auto t = Clock::now();
    at::Tensor x = batch->images.to(rt.device, /*non_blocking=*/batch->images.is_pinned());
    const at::Tensor target = batch->masks.to(rt.device, /*non_blocking=*/batch->masks.is_pinned());
    if (rt.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    sync_device(rt);
    st.times.h2d += since(t);

    const double lr = learning_rate(c, state.global_step, total_steps);
    for (auto& group : opt.param_groups()) group.options().set_lr(lr);

    t = Clock::now();
    at::Tensor loss;
    if (data_parallel) {
      // Forward and backward of every chunk run together on their devices: counted as forward time.
      opt.zero_grad(/*set_to_none=*/true);
      loss = data_parallel->forward_backward(
          x, target, c.aux_weight,
          {rt.amp, rt.amp_dtype, rt.channels_last, scaler ? scaler->scale_tensor() : at::Tensor()});
      sync_device(rt);
      st.times.forward += since(t);
    } else {
      {
        AutocastGuard autocast(rt.device.type(), rt.amp_dtype, rt.amp);
        loss = segmentation_loss(runner.forward(x), target, c.aux_weight);
      }
      sync_device(rt);
      st.times.forward += since(t);

      t = Clock::now();
      opt.zero_grad(/*set_to_none=*/true);
      (scaler ? scaler->scale(loss) : loss).backward();
      sync.average_gradients();  // DDP's all-reduce, in buckets (no-op in one process)
      sync_device(rt);
      st.times.backward += since(t);
    }

    t = Clock::now();
    if (scaler) {
      // Gradients were averaged scaled, so an inf on any rank is an inf on every rank: all skip the same steps.
      if (!scaler->step(opt)) ++st.skipped_steps;
      scaler->update();
    } else {
      opt.step();
    }
    sync_device(rt);
    st.times.optimizer += since(t);

    const at::Tensor detached = loss.detach();
    loss_sum += detached;
    interval_sum += detached;
    ++interval_steps;
    ++st.steps;
    st.images += x.size(0);
    ++state.global_step;
    state.epoch_step = step + 1;

    const bool last = step + 1 == steps_in_epoch;
    if (c.stop_after_steps > 0 && state.global_step >= c.stop_after_steps) g_stop = true;
    const bool stopping = any_rank_stops(comm, g_stop);
    if ((step + 1) % c.log_interval == 0 || last || stopping) {
      // The only device sync per interval; averaged over ranks.
      const double mean = mean_over_ranks(comm, interval_sum.item<double>() / interval_steps);
      PETSEG_CHECK(std::isfinite(mean), "the loss became ", mean, " at epoch ", epoch + 1, " step ", step + 1,
                   "; stopping. The last good checkpoint is kept; try a lower --lr");
      interval_sum.zero_();
      interval_steps = 0;
      const double elapsed = since(t_epoch);
      progress.set_remaining_images(double(steps_in_epoch - step - 1) * c.batch_size);
      progress.update(step + 1, mean, st.images / std::max(1e-9, elapsed), true);
    }
    if (stopping) {
      st.interrupted = true;
      break;
    }
  }
  progress.finish();
  st.seconds = since(t_epoch);
  st.loss = mean_over_ranks(comm, st.steps ? loss_sum.item<double>() / st.steps : NAN);
  return st;
}

struct EvalResult {
  metrics::SegmentationScores scores;
  at::Tensor vis_images, vis_targets, vis_preds;
  double seconds = 0;
  int64_t images = 0;
};

EvalResult evaluate(Runner& runner, data::DataLoader& loader, const Runtime& rt, int64_t num_classes,
                    int64_t max_batches, int vis_samples, dist::Communicator& comm) {
  const auto t0 = Clock::now();
  runner.model()->eval();
  torch::NoGradGuard no_grad;
  metrics::ConfusionMatrix cm(num_classes);
  EvalResult r;
  std::vector<at::Tensor> vi, vt, vp;
  int64_t kept = 0, batches = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    if (max_batches > 0 && batches++ >= max_batches) break;
    at::Tensor x = batch->images.to(rt.device);
    if (rt.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor target = batch->masks.to(rt.device);
    at::Tensor pred;
    {
      AutocastGuard autocast(rt.device.type(), rt.amp_dtype, rt.amp);
      pred = runner.forward(x).out.argmax(1);
    }
    cm.update(target, pred);
    r.images += x.size(0);
    if (kept < vis_samples) {
      const int64_t n = std::min<int64_t>(vis_samples - kept, x.size(0));
      vi.push_back(batch->images.narrow(0, 0, n).clone());
      vt.push_back(batch->masks.narrow(0, 0, n).clone());
      vp.push_back(pred.narrow(0, 0, n).to(at::kCPU));
      kept += n;
    }
  }
  loader.stop();
  if (comm.world_size() > 1) {
    at::Tensor total = cm.matrix().to(at::kCPU).contiguous();  // each rank saw its shard: sum the counts
    comm.allreduce_sum(total);
    cm.matrix() = total.to(cm.matrix().device());
  }
  r.scores = cm.compute();
  if (kept) {
    r.vis_images = at::cat(vi);
    r.vis_targets = at::cat(vt);
    r.vis_preds = at::cat(vp);
  }
  r.seconds = since(t0);
  return r;
}

std::vector<std::string> class_names(int64_t n) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) names.push_back(data::class_name(int(i)));
  return names;
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

std::shared_ptr<const data::PetDataset> open_split(const fs::path& root, data::Split split) {
  return std::make_shared<const data::PetDataset>(data::PetDataset::open(root, split));
}

data::LoaderOptions loader_options(const TrainConfig& c, bool train) {
  data::LoaderOptions lo;
  lo.batch_size = c.batch_size;
  lo.image_size = c.image_size;
  lo.num_workers = c.num_workers;
  lo.pin_memory = c.pin_memory;
  lo.train = train;
  lo.shuffle = train;
  lo.drop_last = train;  // BatchNorm cannot train on a batch of one
  lo.seed = c.seed;
  lo.border = data::parse_border_mode(c.border);
  return lo;
}

}  // namespace

int run_train(TrainConfig c, const std::optional<fs::path>& resume_dir) {
  TrainState state;
  fs::path run_dir;
  if (resume_dir) {
    run_dir = *resume_dir;
    const fs::path last = run_dir / "last.pt";
    PETSEG_CHECK(fs::exists(last), "--resume ", run_dir.string(), ": no last.pt there to resume from");
    const CheckpointInfo info = read_checkpoint_info(last);
    const int epochs = c.epochs;  // 0 unless --epochs was given with --resume
    const int64_t stop_after = c.stop_after_steps;
    const bool distributed = c.distributed;
    c = info.config;
    if (epochs > 0) c.epochs = epochs;  // what a resume may change: train longer, or stop again
    c.stop_after_steps = stop_after;
    c.distributed = distributed;  // a run may continue with another process layout
    state = info.state;
  } else {
    PETSEG_CHECK(!c.distributed || !c.name.empty(),
                 "--distributed needs --name (every rank must write to the same run folder)");
    if (c.name.empty()) c.name = format_now("%Y%m%d-%H%M%S", /*utc=*/false);
    run_dir = c.runs_dir / c.name;
  }
  // The classes come from the data: pet, background (and border with --border 3class).
  const int derived_classes = data::num_classes(data::parse_border_mode(c.border));
  PETSEG_CHECK(c.model.num_classes == 0 || c.model.num_classes == derived_classes, "--num-classes ",
               c.model.num_classes, " does not match the trimaps: --border ", c.border, " gives ", derived_classes,
               " classes");
  c.model.num_classes = derived_classes;
  validate(c);

  // The process group first: everything after it may be checked across ranks.
  std::unique_ptr<dist::Communicator> comm = dist::make_single_process();
  dist::WorldInfo world;
  if (c.distributed) {
    world = dist::world_from_env();
    dist::DistOptions dopts;
    dopts.backend = c.backend;
    dopts.timeout = std::chrono::seconds(c.dist_timeout_s);
    comm = dist::make_c10d(world, dopts, resolve_device(c.device, world.local_rank).is_cuda());
    if (c.threads == 0) {
      // The cores split between the local ranks, but never fewer than 2 threads a rank: with one intra-op thread
      // libtorch 1.13 sends most of DeepLabV3's convolutions (the small-batch 1x1 ones) to its slow non-oneDNN
      // kernels, ~4x slower per step (measured; `petseg bench ladder`'s DDP rung).
      const int local = std::max(1, std::atoi(std::getenv("LOCAL_WORLD_SIZE") ? std::getenv("LOCAL_WORLD_SIZE") : "1"));
      c.threads = std::max(2, int(std::thread::hardware_concurrency()) / local);
      const char* wait = std::getenv("OMP_WAIT_POLICY");
      if (c.threads * local > int(std::thread::hardware_concurrency()) && !(wait && std::string(wait) == "PASSIVE") &&
          comm->rank() == 0) {
        log_warning(
            "ranks x threads exceed the cores: start the ranks with OMP_WAIT_POLICY=PASSIVE (petseg "
            "--nproc-per-node does) or set --threads");
      }
    }
  }
  const bool lead = comm->rank() == 0;  // only rank 0 logs, writes checkpoints and the report
  if (!lead) set_log_level(LogLevel::kWarning);
  if (c.data.empty()) {
    // The embedded default set is made once, by rank 0, before the others look for it.
    if (lead) c.data = data::default_dataset();
    comm->barrier();
    if (!lead) c.data = data::default_dataset();
  }
  if (resume_dir) log_info("resuming ", run_dir.string(), " at epoch ", state.epoch + 1, ", step ", state.epoch_step);
  if (!resume_dir && lead) {
    PETSEG_CHECK(!fs::exists(run_dir / "last.pt"), run_dir.string(), " already holds a run; continue it with --resume ",
                 run_dir.string(), " or choose another --name");
  }
  if (lead) check_writable(run_dir);
  {
    // Ranks started with different options would train different models: refuse at start.
    TrainConfig shared = c;
    shared.threads = 0;
    const std::string text = to_json(shared);
    dist::check_same_on_all_ranks(*comm, "the configuration", std::hash<std::string>{}(text));
  }
  configure_threads(c.threads);
  const Runtime rt = make_runtime(c, world.local_rank);
  at::manual_seed(c.seed);

  model::ModelConfig mc = c.model;
  if (resume_dir) mc.weights.clear(), mc.backbone_weights.clear();  // the checkpoint has them
  model::BuiltModel built = model::build_model(mc);
  for (const auto& line : model::describe(built, mc)) log_info(line);
  model::DeepLabV3 net = built.model;
  net->to(rt.device);
  if (rt.channels_last) model::convert_to_channels_last(*net);
  auto opt = make_optimizer(c, net);
  if (resume_dir) load_checkpoint(run_dir / "last.pt", *net, opt.get());
  dist::GradientSync grad_sync(*comm, opt->param_groups()[0].params());
  {
    std::vector<at::Tensor> everything = net->parameters();
    for (auto& b : net->buffers()) everything.push_back(b);
    grad_sync.broadcast_parameters(everything);  // rank 0's weights everywhere, as DDP does at start
  }
  if (c.sync_bn) {
    if (comm->world_size() > 1) {
      dist::Communicator* cm = comm.get();
      const int n = model::convert_sync_batchnorm(*net, [cm](at::Tensor& t) { cm->allreduce_sum(t); });
      log_info("--sync-bn: ", n, " BatchNorm layers normalise over the batches of all ", comm->world_size(), " ranks",
               net->backbone_frozen() ? " (the frozen backbone's stay in eval mode)" : "");
    } else {
      log_warning("--sync-bn: one process, so BatchNorm already sees the whole batch");
    }
  }
  std::unique_ptr<DataParallel> data_parallel;
  if (c.data_parallel) {
    const std::vector<at::Device> devices = rt.device.is_cuda() ? data_parallel_devices() : std::vector<at::Device>{};
    if (comm->world_size() > 1) {
      if (lead)
        log_warning("--data-parallel is ignored under --distributed: each rank drives one device, as DDP should");
    } else if (devices.size() < 2) {
      log_warning("--data-parallel: ", rt.device.is_cuda() ? torch::cuda::device_count() : 0,
                  " CUDA device(s) here and DataParallel needs 2 or more; training on one device (", rt.device.str(),
                  ")");
    } else {
      data_parallel = std::make_unique<DataParallel>(net, c.model, devices, c.torch_script, rt.channels_last);
      log_info("--data-parallel: each batch split over ", devices.size(), " GPUs");
    }
  }
  std::optional<GradScaler> scaler;
  if (rt.amp && rt.amp_dtype == at::kHalf) {
    scaler.emplace(rt.device);
    if (state.loss_scale > 0) scaler->load(state.loss_scale, state.loss_scale_growth_tracker);
    log_info("--amp fp16: dynamic loss scaling (torch.amp.GradScaler's rules), scale ", scaler->current_scale());
  }
  // What a checkpoint keeps of the scaler.
  auto keep_scaler_state = [&] {
    if (!scaler) return;
    state.loss_scale = scaler->current_scale();
    state.loss_scale_growth_tracker = scaler->growth_tracker();
  };
  std::optional<Runner> own_runner;
  if (!data_parallel) own_runner.emplace(net, c.torch_script);
  Runner& runner = data_parallel ? data_parallel->primary() : *own_runner;

  data::LoaderOptions train_opts = loader_options(c, true), val_opts = loader_options(c, false);
  train_opts.rank = val_opts.rank = comm->rank();
  train_opts.world_size = val_opts.world_size = comm->world_size();
  auto train_loader = std::make_unique<data::DataLoader>(open_split(c.data, data::Split::kTrainval), train_opts);
  auto val_loader = std::make_unique<data::DataLoader>(open_split(c.data, data::Split::kTest), val_opts);
  int64_t steps_per_epoch = train_loader->batches_per_epoch();
  if (c.max_steps_per_epoch > 0) steps_per_epoch = std::min<int64_t>(steps_per_epoch, c.max_steps_per_epoch);
  PETSEG_CHECK(steps_per_epoch > 0, "no full batch of ", c.batch_size, " in the training split; lower --batch-size");
  const int64_t total_steps = steps_per_epoch * c.epochs;
  log_info("train: ", c.epochs, " epochs x ", steps_per_epoch, " steps of ", c.batch_size,
           comm->world_size() > 1
               ? detail::str_cat(" per rank x ", comm->world_size(), " ranks (", comm->backend(), ")")
               : "",
           " at ", c.image_size, "x", c.image_size, ", ", c.optimizer, " lr ", c.lr, ", ", runtime_summary(),
           ", device ", rt.device.str(), rt.amp ? ", autocast " + c.amp : "", c.torch_script ? ", TorchScript" : "",
           "; run folder ", run_dir.string());
  if (lead) {
    write_file_atomic(run_dir / "config.json", to_json(c) + "\n");
    // metrics.jsonl is the checkpoint's history plus what follows: epochs logged after the last checkpoint by a run
    // that was killed are dropped, as the resume trains them again.
    std::string lines;
    for (const auto& entry : json::parse(state.history)) lines += entry.dump() + "\n";
    write_file_atomic(run_dir / "metrics.jsonl", lines);
  }

  g_stop = false;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  json history = json::parse(state.history);

  for (int64_t epoch = state.epoch; epoch < c.epochs; ++epoch) {
    std::optional<EpochStats> stats;
    if (c.profile_steps > 0 && epoch == state.epoch && !resume_dir) {
      // Profile the first N steps as a separate short pass through the same loop (rank 0 writes the trace).
      const fs::path trace = run_dir / "trace.json";
      TrainState probe = state;
      {
        std::optional<TraceRecorder> recorder;
        if (lead) recorder.emplace(trace, rt.device.is_cuda());
        train_one_epoch(runner, *opt, *train_loader, epoch, std::min<int64_t>(c.profile_steps, steps_per_epoch), probe,
                        c, rt, total_steps, *comm, grad_sync, data_parallel.get(), scaler ? &*scaler : nullptr);
        if (recorder) recorder->save();
      }
      if (lead) {
        const std::string table = top_ops_table(trace, 15);
        write_file_atomic(run_dir / "profile_top_ops.txt", table);
        log_info("profile of ", c.profile_steps, " steps: ", trace.string(),
                 " (open in Perfetto or chrome://tracing)\n", table);
      }
      state = probe;
    }
    stats = train_one_epoch(runner, *opt, *train_loader, epoch, steps_per_epoch, state, c, rt, total_steps, *comm,
                            grad_sync, data_parallel.get(), scaler ? &*scaler : nullptr);
    keep_scaler_state();
    if (stats->interrupted) {
      if (lead) {
        save_checkpoint(run_dir / "last.pt", *net, *opt, state, c);
        log_warning("interrupted: saved ", (run_dir / "last.pt").string(), " at epoch ", epoch + 1, " step ",
                    state.epoch_step, "; continue with petseg train --resume ", run_dir.string());
      }
      comm->barrier();  // the checkpoint exists before any rank exits
      return kExitInterrupted;
    }
    const EvalResult ev =
        evaluate(runner, *val_loader, rt, c.model.num_classes, c.eval_max_batches, c.vis_samples, *comm);
    stats->times.eval = ev.seconds;
    const double images_per_s = comm->world_size() * stats->images / std::max(1e-9, stats->seconds);
    state.epoch = epoch + 1;
    state.epoch_step = 0;
    if (lead) {
      const fs::path grid_dir = run_dir / "predictions";
      fs::create_directories(grid_dir);
      const fs::path grid = grid_dir / ("epoch_" + std::to_string(epoch + 1) + ".png");
      if (ev.vis_images.defined()) {
        report::write_png(grid, report::prediction_grid(ev.vis_images, ev.vis_targets, ev.vis_preds));
      }
      const json entry = {{"epoch", epoch + 1},
                          {"train_loss", stats->loss},
                          {"lr", learning_rate(c, state.global_step, total_steps)},
                          {"miou", ev.scores.mean_iou},
                          {"pixel_accuracy", ev.scores.pixel_accuracy},
                          {"iou", ev.scores.iou},
                          {"class_accuracy", ev.scores.class_accuracy},
                          {"class_names", class_names(c.model.num_classes)},
                          {"images_per_s", images_per_s},
                          {"ranks", comm->world_size()},
                          {"loss_scale", state.loss_scale},
                          {"skipped_steps", stats->skipped_steps},
                          {"seconds", stats->seconds},
                          {"times",
                           {{"data", stats->times.data},
                            {"h2d", stats->times.h2d},
                            {"forward", stats->times.forward},
                            {"backward", stats->times.backward},
                            {"optimizer", stats->times.optimizer},
                            {"eval", stats->times.eval}}}};
      history.push_back(entry);
      {
        std::ofstream out(run_dir / "metrics.jsonl", std::ios::app);
        out << entry.dump() << "\n";
        PETSEG_CHECK(out.good(), "cannot append to ", (run_dir / "metrics.jsonl").string());
      }
      log_info("epoch ", epoch + 1, "/", c.epochs, ": train loss ", stats->loss, ", ", images_per_s, " img/s (data ",
               std::lround(100 * stats->times.data / std::max(1e-9, stats->seconds)), "% of the time)\n",
               metrics::format_scores(ev.scores, class_names(c.model.num_classes)));
      state.history = history.dump();
      const bool best = ev.scores.mean_iou > state.best_miou;
      if (best) state.best_miou = ev.scores.mean_iou;
      save_checkpoint(run_dir / "last.pt", *net, *opt, state, c);
      if (best) save_checkpoint(run_dir / "best.pt", *net, *opt, state, c);
      report::write_report(run_dir, history.dump(), to_json(c), grid);
    }
  }
  comm->barrier();
  log_info("done: best mIoU ", 100 * state.best_miou, " %; checkpoint ", (run_dir / "best.pt").string(), ", report ",
           (run_dir / "report.html").string());
  return 0;
}

EvalSummary run_eval(const fs::path& checkpoint, const fs::path& data_override, bool torch_script, int num_workers,
                     const std::string& device) {
  CheckpointInfo info = read_checkpoint_info(checkpoint);
  TrainConfig c = info.config;
  c.device = device;
  if (!data_override.empty()) c.data = data_override;
  if (c.data.empty()) c.data = data::default_dataset();
  c.num_workers = num_workers;
  configure_threads(c.threads);
  const Runtime rt = make_runtime(c);
  model::ModelConfig mc = c.model;
  mc.weights.clear();
  mc.backbone_weights.clear();
  model::DeepLabV3 net = model::build_model(mc).model;
  load_checkpoint(checkpoint, *net, nullptr);
  net->to(rt.device);
  if (rt.channels_last) model::convert_to_channels_last(*net);
  Runner runner(net, torch_script);
  data::DataLoader loader(open_split(c.data, data::Split::kTest), loader_options(c, false));
  auto single = dist::make_single_process();
  const EvalResult ev = evaluate(runner, loader, rt, c.model.num_classes, 0, 0, *single);
  log_info("eval ", checkpoint.string(), " on ", c.data.string(), " (test split, ", ev.images, " images, ", ev.seconds,
           " s)\n", metrics::format_scores(ev.scores, class_names(c.model.num_classes)));
  return {ev.scores, ev.seconds, ev.images};
}

}  // namespace petseg::train
