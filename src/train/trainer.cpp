// The training loop, in the shape of torchvision's references/segmentation/train.py: run_train is a list of named
// set-up steps that fill one TrainContext, then a loop of train_one_epoch -> evaluate -> record_epoch. One optimizer
// for the whole run; the loss is read back from the device only at log intervals; checkpoints after every epoch
// (and on SIGINT/SIGTERM mid-epoch), the best by mIoU kept apart.
#include "train/trainer.h"

#include <ATen/ops/zeros.h>
#if __has_include(<c10/cuda/CUDAFunctions.h>)
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "distributed/step_sync.h"
#include "train/profiling.h"
#include "train/progress.h"
#include "train/run_context.h"
#include "train/schedule.h"

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

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Averages a scalar tensor (on the run's device) over ranks: one collective on the device, then one host read.
double mean_over_ranks(distributed::Communicator& comm, const at::Tensor& value) {
  at::Tensor t = value.detach().to(at::kDouble).reshape({1}).clone();
  if (comm.world_size() > 1) comm.allreduce_sum(t);
  return comm.to_host(t).item<double>() / comm.world_size();
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
    const bool limit_reached = e.stop_after > 0 && state.global_step >= e.stop_after;
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
    train_one_epoch(ctx, epoch, std::min<int64_t>(ctx.config.exec.profile, ctx.steps_per_epoch), probe,
                    /*profiling=*/true);
    if (recorder) recorder->save();
  }
  if (ctx.lead) {
    const std::string table = top_ops_table(trace, 15);
    write_file_atomic(ctx.run_dir / "profile_top_ops.txt", table);
    log_info("profile of ", ctx.config.exec.profile, " steps: ", trace.string(),
             " (open in Perfetto or chrome://tracing)\n", table);
  }
  ctx.state = probe;
}

}  // namespace

int run_train(const TrainConfig& config) {
  TrainRequest request;
  request.config = config;
  return run_train(request);
}

int run_train(const TrainRequest& request) {
  TrainContext ctx;
  resolve_run(ctx, request);
  setup_distribution(ctx);
  open_data(ctx);
  setup_loss(ctx);
  build_model_and_optimizer(ctx);
  make_loaders(ctx);
  write_run_start(ctx);

  g_stop = false;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  const RunSpec& spec = ctx.config.spec;
  for (int64_t epoch = ctx.state.epoch; epoch < spec.epochs; ++epoch) {
    if (ctx.config.exec.profile > 0 && epoch == ctx.state.epoch && !ctx.resumed) profile_steps(ctx, epoch);
    const EpochStats stats = train_one_epoch(ctx, epoch, ctx.steps_per_epoch, ctx.state);
    keep_scaler_state(ctx);
    if (stats.interrupted) return save_interrupted(ctx, epoch);
    const EvalResult ev = evaluate(*ctx.runner, *ctx.val_loader, ctx.rt.device, ctx.rt.precision,
                                   spec.model.num_classes, spec.eval_batches, ctx.config.exec.vis_samples,
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
