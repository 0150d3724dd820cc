// Everything a training run is configured by; saved in every checkpoint (JSON) so eval/predict/resume rebuild the
// same model and data pipeline.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/choices.h"
#include "data/loader.h"
#include "model/factory.h"

namespace petseg::train {

inline const Choices kOptimizerChoices = {"sgd", "adam"};    // --optimizer
inline const Choices kAmpChoices = {"off", "bf16", "fp16"};  // --amp

struct TrainConfig {
  std::filesystem::path data;  // empty: the embedded synthetic set
  std::filesystem::path runs_dir = "runs";
  std::string name;  // empty: a timestamp
  int epochs = 3;
  int batch_size = 8;
  int image_size = 256;
  double lr = 0.01;
  std::string optimizer = "sgd";  // sgd (momentum 0.9, wd 1e-4) | adam
  double momentum = 0.9;
  double weight_decay = 1e-4;
  int warmup_iters = 0;  // linear warm-up before the poly schedule
  double aux_weight = 0.5;
  std::string border = "3class";  // 3class | ignore
  int threads = 0;
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda
  std::string amp = "off";      // off | bf16 | fp16
  bool channels_last = false;
  int num_workers = 2;
  bool pin_memory = true;       // page-locked batches when training on CUDA (where there is no GPU: no effect)
  bool cudnn_benchmark = true;  // CUDA: cuDNN times its algorithms once per input shape (fixed crops: its best case)
  bool torch_script = false;
  bool data_parallel = false;  // split each batch over every visible GPU (one process)
  bool sync_bn = false;        // BatchNorm statistics over the global batch in distributed runs
  // num_classes 0: derived from --border (3 for 3class, 2 for ignore); anything else must agree with it.
  model::ModelConfig model = [] {
    model::ModelConfig m;
    m.num_classes = 0;
    return m;
  }();
  int log_interval = 10;
  int profile_steps = 0;        // record N steps with the autograd profiler
  int max_steps_per_epoch = 0;  // 0: the whole epoch (tests and dry runs use a limit)
  int eval_max_batches = 0;     // 0: the whole validation split
  int vis_samples = 4;
  int64_t stop_after_steps = 0;  // > 0: stop as on SIGINT once this many steps are done (tests, time boxes)
  bool distributed = false;      // one process per rank, rendezvous from the torchrun environment
  std::string backend = "auto";  // auto | gloo | nccl
  int dist_timeout_s = 300;      // a rank silent this long ends the run with an error naming it
};

// JSON in both directions from one table of fields (config.cpp): a field is saved and read back, or neither.
std::string to_json(const TrainConfig& config);
TrainConfig config_from_json(const std::string& json);
// The keys of that table, in order (what a round trip must preserve).
std::vector<std::string> config_keys();
// Checks values a user can get wrong, naming the option and the valid choices.
void validate(const TrainConfig& config);

}  // namespace petseg::train
