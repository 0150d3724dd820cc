// Training, in the shape of torchvision's references/segmentation/train.py: train_one_epoch, evaluate (train/eval.h),
// and a main loop that checkpoints, logs metrics.jsonl, draws predictions and writes the report (one line of
// metrics.jsonl: report/epoch_record.h).
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "train/config.h"

namespace petseg::train {

// Exit codes of run_train beyond 0: interrupted by SIGINT/SIGTERM after saving.
inline constexpr int kExitInterrupted = 130;

// What `petseg train` was asked to do.
struct TrainRequest {
  TrainConfig config;
  // The spec keys (config.h's, "lr", "batch_size") the command line named: a resume compares only these with the
  // saved run (one not named takes the run's value).
  std::set<std::string> spec_given{};
  // Continue the run in this folder exactly where it stopped: its saved spec, this request's execution options.
  std::optional<std::filesystem::path> resume_dir{};
  // --resume auto (what a job restarted by torchrun runs again): continue runs_dir/name when it holds a checkpoint,
  // start it when it holds none; by the same rule as resume_dir.
  bool resume_auto = false;
};

// Trains into runs_dir/name/ (or continues a run as the request says). Returns the process exit code.
int run_train(const TrainRequest& request);
// Starts the run `config` describes (a request with nothing else).
int run_train(const TrainConfig& config);

}  // namespace petseg::train
