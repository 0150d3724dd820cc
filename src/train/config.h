// A training run's configuration in two parts: the RunSpec (what the run is: saved in every checkpoint, compared on
// every resume and across ranks) and the ExecOptions (how this start runs it: taken from the command line on every
// start, free to change between starts). JSON in both directions from one field table per part (config.cpp).
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/choices.h"
#include "data/loader.h"
#include "model/factory.h"

namespace petseg::distributed {
class Communicator;
}

namespace petseg::train {

inline const Choices kOptimizerChoices = {"sgd", "adam"};    // --optimizer
inline const Choices kAmpChoices = {"off", "bf16", "fp16"};  // --amp

// What the run is: the model, the data, the classes, the optimizer and its schedule, the seed, the precision.
// Changing any of it mid-run would train another model; a resume keeps it (only `epochs` may grow).
struct RunSpec {
  std::filesystem::path data;  // as the user named it; empty: the embedded synthetic set
  int epochs = 3;
  int batch_size = 8;  // per process
  int image_size = 256;
  double lr = 0.01;
  std::string optimizer = "sgd";  // sgd | adam
  double momentum = 0.9;
  double weight_decay = 1e-4;
  int warmup_iters = 0;  // linear warm-up before the poly schedule
  double aux_weight = 0.5;
  double aux_lr_mult = 10;  // the aux head's learning rate over lr (torchvision's reference: 10)
  // The training loss (train/loss.h's kLossChoices) and the class weights of its cross-entropy term as the user asked
  // them: none, auto (median frequency over the training split, resolved once per run: the resolved weights are in
  // the checkpoint, which a resume uses) or one weight per class.
  std::string loss = "ce";
  std::string class_weights = "none";
  std::string border = "3class";  // 3class | ignore (the Oxford-IIIT Pet trimaps)
  // How the data folder is read (data::DatasetOptions): its layout (auto: recognised), the validation share of a
  // folders set without split files (drawn from `seed`), the colours of RGB masks.
  std::string layout = data::kAutoLayout;
  double val_fraction = 0.1;
  std::filesystem::path class_colors;
  int ignore_index = 255;  // class-index and colour masks: the class the loss and the metrics ignore
  uint64_t seed = 0;
  std::string amp = "off";  // off | bf16 | fp16
  bool sync_bn = false;     // BatchNorm statistics over the global batch in distributed runs
  // num_classes 0: the data set's (the pets: 3, or 2 with --border ignore); anything else must agree with it. The weight
  // fields hold what the user asked (coco, a file name, a path), resolved on each host when the run starts.
  model::ModelConfig model = [] {
    model::ModelConfig m;
    m.num_classes = 0;
    return m;
  }();
  int max_steps = 0;  // 0: the whole epoch (tests and dry runs use a limit)
  int eval_batches = 0;     // 0: the whole validation split
};

// How this start runs the run: where, on what, with how many threads and workers, what it logs and profiles, the
// distributed set-up. Saved with each checkpoint for the record only; a resume takes the command line's.
struct ExecOptions {
  std::filesystem::path runs_dir = "runs";
  std::string name;  // the run folder under runs_dir; empty: a timestamp
  int threads = 0;   // intra-op threads, 0: one per core (split among local ranks)
  std::string device = "auto";  // auto | cpu | cuda
  data::WorkerOptions loader = [] {
    data::WorkerOptions w;
    w.num_workers = 2;
    w.pin_memory = true;  // page-locked batches when training on CUDA (where there is no GPU: no effect)
    return w;
  }();
  bool channels_last = false;
  bool torch_script = false;
  bool data_parallel = false;   // split each batch over every visible GPU (one process)
  bool cudnn_benchmark = true;  // CUDA: cuDNN times its algorithms once per input shape (fixed crops: its best case)
  int log_interval = 10;
  int profile = 0;  // record N steps with the autograd profiler (--profile)
  int vis_samples = 4;
  int64_t stop_after = 0;  // > 0: stop as on SIGINT once this many steps are done (tests, time boxes)
  bool distributed = false;      // one process per rank, rendezvous from the torchrun environment
  std::string backend = "auto";  // auto | gloo | nccl
  int dist_timeout = 300;      // a rank silent this long ends the run with an error naming it
  std::string mirror;    // where named weights are downloaded from (empty: $PETSEG_WEIGHTS_MIRROR, else PyTorch)
  bool checkpoints = true;  // false: no last.pt / best.pt (benchmark rungs, smoke tests): such a run cannot resume
  bool tensorboard = true;                // rank 0 writes TensorBoard event files
  std::filesystem::path tensorboard_dir;  // where; empty: the run folder's tb/
};

struct TrainConfig {
  RunSpec spec;
  ExecOptions exec;
};

// {"spec": {...}, "exec": {...}}. config_from_json also reads the flat object of petseg before the split (one key
// per field, each now in one of the two parts).
// nlohmann's hooks (json j = config; j.get<TrainConfig>()) are petseg's one way to write and read JSON, as the plans,
// the epoch records and the bench results do; the string forms below are the files' texts.
void to_json(nlohmann::json& j, const TrainConfig& config);
void from_json(const nlohmann::json& j, TrainConfig& config);
void to_json(nlohmann::json& j, const RunSpec& spec);
void from_json(const nlohmann::json& j, RunSpec& spec);
std::string to_json(const TrainConfig& config);
TrainConfig config_from_json(const std::string& json);
std::string spec_to_json(const RunSpec& spec);
// The keys of each part's table, in order (what a round trip must preserve). Each key is the name of the option that
// sets it, in snake case ("max_steps": --max-steps); config.cpp reads the keys older configs hold as well.
std::vector<std::string> spec_keys();
std::vector<std::string> exec_keys();

RunSpec spec_from_json(const std::string& json);

struct SpecDifference {
  std::string key, ours, theirs;  // theirs, ours: JSON texts
};
// "--lr is 0.5 here and 0.01 there; --seed is ..." (`here`, `there`: how the two sides are called).
std::string describe(const std::vector<SpecDifference>& differences, const std::string& here,
                     const std::string& there);
// The spec fields whose values differ (paths naming the same existing file are equal); `keys` empty: all of them.
std::vector<SpecDifference> spec_differences(const RunSpec& ours, const RunSpec& theirs,
                                             const std::set<std::string>& keys = {});
// The exec fields whose values differ, as "key a -> b" texts (what a resume logs).
std::vector<std::string> exec_changes(const ExecOptions& before, const ExecOptions& now);

// Ranks started with another spec would train different models, and ranks with another log interval, stop step,
// profile or backend would run other collectives: every rank fails at start, and one that differs from rank 0 names
// each differing option with both values. The data set's folder is not compared (each host's own mount point).
void check_ranks_agree(distributed::Communicator& comm, const TrainConfig& config);

// After every rank opened its data set: the layout, the class names and the sizes of both splits must be rank 0's
// (another class list or split size would build other heads or take other steps, and the collectives would no longer
// pair up). A rank that differs names what it read and what rank 0 read.
void check_ranks_read_the_same_data(distributed::Communicator& comm, const data::SegmentationDataset& train,
                                    const data::SegmentationDataset& val, const std::vector<std::string>& class_names);

// The loader of the run's training split (`train`) or validation split: the spec's batches, crops, seed and border,
// run as `workers` says (pinned only when the batches go to a GPU, `to_cuda`).
data::LoaderOptions loader_options(const RunSpec& spec, const data::WorkerOptions& workers, bool train, bool to_cuda);

// How the run reads its data folder.
data::DatasetOptions dataset_options(const RunSpec& spec);

// Checks values a user can get wrong, naming the option and the valid choices.
void validate(const TrainConfig& config);

}  // namespace petseg::train
