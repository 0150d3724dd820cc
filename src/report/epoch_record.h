// What one epoch of training recorded: a line of runs/<name>/metrics.jsonl, the history a checkpoint carries, what
// the report draws and what `petseg bench ladder` measures. One struct, read and written in one place.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace petseg::report {

// Seconds per phase of an epoch, on the host's clock. On CUDA the host runs ahead of the GPU, so h2d, forward,
// backward and optimizer are the time to launch their kernels (the GPU's time shows up where the host next waits):
// `launch_times` says so. Only --profile's steps synchronise at every phase (and are exact).
struct PhaseTimes {
  double data = 0, h2d = 0, forward = 0, backward = 0, optimizer = 0, eval = 0;
  bool launch_times = false;
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  int64_t step = 0;   // optimizer steps at its end (TensorBoard's step of its scalars; 0 in older files)
  double train_loss = 0;
  double lr = 0;  // at the end of the epoch
  double miou = 0;
  double pixel_accuracy = 0;
  std::vector<double> iou, class_accuracy;  // per class (NaN where undefined)
  // Per class, as metrics::SegmentationScores defines them (NaN where undefined); empty in lines of petseg before them.
  std::vector<double> dice, precision, recall;
  // [C][C] validation pixels, rows = target class, columns = predicted class (empty in older lines).
  std::vector<std::vector<int64_t>> confusion;
  std::vector<std::string> class_names;
  double images_per_s = 0;  // over all ranks
  int ranks = 1;
  double seconds = 0;         // the training part of the epoch
  double loss_scale = 0;      // fp16: the loss scaler's scale at the end (0: no scaling)
  int64_t skipped_steps = 0;  // fp16: steps skipped for inf/NaN gradients
  PhaseTimes times;
};

// nlohmann's hooks (json j = record; j.get<EpochRecord>()): petseg's one way to write and read JSON, as the plans,
// the configuration and the bench results do.
void to_json(nlohmann::json& j, const EpochRecord& record);
void from_json(const nlohmann::json& j, EpochRecord& record);
std::string to_json_line(const EpochRecord& record);  // one line, no newline
// Reads a line as written by to_json_line (keys that older petseg versions did not write get their defaults);
// `where` names the file in errors.
EpochRecord epoch_record_from_json(const std::string& line, const std::string& where);
// A history: a JSON array of records (what checkpoints hold).
std::string history_to_json(const std::vector<EpochRecord>& history);
std::vector<EpochRecord> history_from_json(const std::string& json, const std::string& where);

}  // namespace petseg::report
