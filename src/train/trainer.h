// Training, in the shape of torchvision's references/segmentation/train.py: train_one_epoch, evaluate (train/eval.h),
// and a main loop that checkpoints, logs metrics.jsonl, draws predictions and writes the report (one line of
// metrics.jsonl: report/epoch_record.h).
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "model/factory.h"
#include "train/config.h"
#include "train/optimizer.h"

namespace petseg::train {

// Exit codes of run_train beyond 0: interrupted by SIGINT/SIGTERM after saving.
inline constexpr int kExitInterrupted = 130;

// What `petseg train` was asked to do.
struct TrainRequest {
  TrainConfig config;
  // The spec keys (config.h's, "lr", "batch_size") the command line named: a resume compares only these with the
  // saved run (one not named takes the run's value).
  std::set<std::string> spec_given;
  // Continue the run in this folder exactly where it stopped: its saved spec, this request's execution options.
  std::optional<std::filesystem::path> resume_dir;
  // --resume auto (what a job restarted by torchrun runs again): continue runs_dir/name when it holds a checkpoint,
  // start it when it holds none; by the same rule as resume_dir.
  bool resume_auto = false;
};

// The model `config` names, its weight names (coco, imagenet, a torchvision file name) resolved to files in this
// host's torch.hub cache (downloaded from `mirror` if needed); logs what was loaded and replaced.
model::BuiltSegmentationModel build_named_model(model::ModelConfig config, const std::string& mirror);

// torchvision's reference schedule: optional linear warm-up, then polynomial decay (power 0.9) per step.
double learning_rate(const RunSpec& spec, int64_t step, int64_t total_steps);
// torchvision's params_to_optimize: backbone and classifier at lr, the aux classifier at lr * spec.aux_lr_mult; a
// frozen backbone's parameters are left out. In the model's parameter order (the aux head is registered last).
std::vector<ParamGroup> param_groups_of(model::SegmentationModel& model, const RunSpec& spec);

// Trains into runs_dir/name/ (or continues a run as the request says). Returns the process exit code.
int run_train(const TrainRequest& request);

}  // namespace petseg::train
