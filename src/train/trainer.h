// Training and evaluation, in the shape of torchvision's references/segmentation/train.py: train_one_epoch,
// evaluate, and a main loop that checkpoints, logs metrics.jsonl, draws predictions and writes the report
// (one line of metrics.jsonl: report/epoch_record.h).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "metrics/confusion.h"
#include "train/config.h"

namespace petseg::train {

// Exit codes of run_train beyond 0: interrupted by SIGINT/SIGTERM after saving.
inline constexpr int kExitInterrupted = 130;

// Trains per `config` into runs/<name>/ (or continues `resume_dir` with the config saved there; a resume takes
// only `epochs` (when > 0) and `stop_after_steps` from `config`). With `resume_auto` (--resume auto, what a job
// restarted by torchrun runs again): continues runs/<name>/ when it holds a checkpoint of the same configuration,
// starts it when it holds none, and refuses when the configuration differs. Returns the process exit code.
int run_train(TrainConfig config, const std::optional<std::filesystem::path>& resume_dir, bool resume_auto = false);

struct EvalSummary {
  metrics::SegmentationScores scores;
  double seconds = 0;
  int64_t images = 0;
};
// Evaluates a checkpoint on a split (default: the data set and split the run validated on), on `device` (auto, cpu,
// cuda; the run's autocast setting is kept).
EvalSummary run_eval(const std::filesystem::path& checkpoint, const std::filesystem::path& data_override,
                     bool torch_script, int num_workers, const std::string& device = "auto");

}  // namespace petseg::train
