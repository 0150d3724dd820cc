// Checkpoints: model, optimizer, schedule position, epoch/step, RNG state, best score, metrics history and the
// config, in one file written atomically (temporary file, fsync, rename, fsync of the folder): a crash leaves the
// previous checkpoint or the new one, never a torn file. Truncated, corrupt or foreign files are refused. The file is
// a torch.save zip (Python's torch.load reads it) read back by the safe reader of model/weights.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/factory.h"
#include "train/config.h"

namespace petseg::train {

struct TrainState {
  int64_t epoch = 0;        // epochs completed
  int64_t epoch_step = 0;   // batches done in the epoch under way (a checkpoint taken on SIGINT)
  int64_t global_step = 0;  // optimizer steps so far (the LR schedule's position)
  double best_miou = -1;
  std::string history = "[]";  // JSON array: one object per finished epoch
  // The fp16 loss scaler's state (train/grad_scaler.h); 0 when the run does not scale its loss.
  double loss_scale = 0;
  int64_t loss_scale_growth_tracker = 0;
  // The cross-entropy's class weights as the run resolved --class-weights (auto: counted once, when the run started);
  // a resume trains with these, not a recount. Empty: unweighted.
  std::vector<double> class_weights;
};

void save_checkpoint(const std::filesystem::path& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const TrainState& state, const TrainConfig& config);

struct CheckpointInfo {
  TrainConfig config;
  TrainState state;
};
// Reads the config and state only (what eval, predict and resume need first).
CheckpointInfo read_checkpoint_info(const std::filesystem::path& path);
// The model a checkpoint was trained as (its config's architecture; the weight files the run started from are not
// read again, the checkpoint holds the weights) with the checkpoint's values: what eval and predict run.
model::SegmentationModel load_checkpoint_model(const std::filesystem::path& path, CheckpointInfo* info = nullptr);
// Restores model (and optimizer and the random generators, when given) from the file. `rank_device` >= 0: this
// process is a rank of a distributed run on that CUDA device, whose generator continues rank 0's saved stream (every
// rank draws the same numbers from the same seed); -1: each saved CUDA generator onto its own device.
void load_checkpoint(const std::filesystem::path& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                     int rank_device = -1);
// The same from bytes in memory; `name` is used in error messages (the fuzzer drives these).
CheckpointInfo read_checkpoint_info(const uint8_t* data, size_t size, const std::string& name);
void load_checkpoint(const uint8_t* data, size_t size, const std::string& name, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer);

}  // namespace petseg::train
