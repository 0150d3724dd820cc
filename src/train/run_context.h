// What one training run holds while it runs: built by the set-up steps (train/run_setup.cpp), used by the loop
// (train/trainer.cpp) and written to the run folder (train/run_folder.cpp). Internal to src/train.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/layout.h"
#include "data/loader.h"
#include "distributed/communicator.h"
#include "distributed/reducer.h"
#include "model/segmentation.h"
#include "report/board.h"
#include "report/epoch_record.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/grad_scaler.h"
#include "train/optimizer.h"
#include "train/runner.h"
#include "train/step.h"
#include "train/trainer.h"

namespace petseg::train {

namespace fs = std::filesystem;

// What this rank runs on: its device, and the spec's precision with the exec's memory layout.
struct Runtime {
  at::Device device = at::kCPU;
  StepPrecision precision;  // loss_scale unset: the scaler's, set per step
};

// Everything one training run holds, built once by run_train's set-up steps and used by the loop.
struct TrainContext {
  TrainConfig config;
  fs::path run_dir;
  fs::path data_root;  // the spec's data set, or the embedded one it names by leaving --data empty
  TrainState state;
  bool resumed = false;
  std::vector<std::string> exec_changes;  // a resume: the execution options that differ from the last start's
  std::vector<report::EpochRecord> history;

  std::unique_ptr<distributed::Communicator> comm = distributed::make_single_process();
  distributed::WorldInfo world;
  bool lead = true;  // rank 0: logs, writes checkpoints and the report
  Runtime rt;

  std::shared_ptr<const data::SegmentationDataset> train_set, val_set;
  std::vector<std::string> class_names;  // the model's classes, in index order
  const data::Layout* layout = nullptr;  // the data set's, once it is open

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

// ------------------------------------------------------------------ set-up steps (run_setup.cpp)

// The process group first (everything after it may be checked across ranks), the threads, the data set, the run
// folder, and the ranks' agreement on the run spec.
void setup_distribution(TrainContext& ctx);
// The data set's two splits, and the classes the model predicts (from the data set; --num-classes must agree).
void open_data(TrainContext& ctx);
// The step's loss (--loss) with its class weights (--class-weights; auto: counted once per run, kept in
// state.class_weights for the checkpoint and in the run folder's class_weights.json), printed (loss_setup.cpp).
void setup_loss(TrainContext& ctx);
// The model (with the checkpoint's values on a resume), the optimizer, DDP's gradient sync, SyncBatchNorm, the
// fp16 loss scaler and the step (eager, TorchScript or DataParallel).
void build_model_and_optimizer(TrainContext& ctx);
void make_loaders(TrainContext& ctx);

// ------------------------------------------------------------------ the run folder (run_folder.cpp)

// The run folder and configuration: a new run, or the one the resume continues (its saved spec, with this start's
// execution options; what changed since the last start is logged).
void resolve_run(TrainContext& ctx, const TrainRequest& request);
// The run folder must be writable before any training starts.
void check_writable(const fs::path& dir);
// The start of the run in its folder: the config, TensorBoard's session, and metrics.jsonl as the checkpoint's history.
void write_run_start(TrainContext& ctx);
// What the scaler keeps in a checkpoint.
void keep_scaler_state(TrainContext& ctx);
// After an epoch (rank 0): the prediction grid, metrics.jsonl, the log, the checkpoints and the report.
void record_epoch(TrainContext& ctx, int64_t epoch, const EpochStats& stats, const EvalResult& ev);
// Ctrl-C or SIGTERM mid-epoch: rank 0 saves where every rank stopped, then all exit together.
int save_interrupted(TrainContext& ctx, int64_t epoch);

}  // namespace petseg::train
