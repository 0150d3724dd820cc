// Every option of the petseg command line, declared once (as llama.cpp's common/arg.cpp declares its arguments): its
// spellings (kebab case, and the original project's snake_case derived from it), its help, its default (the Params
// field's value for the command, printed by --help), its choices and the commands that take it. The run-spec key an
// option sets is its name (train/config.h's keys are the options' names in snake case). Commands read what they need
// from one Params.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/choices.h"
#include "data/synth.h"
#include "train/config.h"
#include "train/inference.h"

namespace petseg::cli {

// The commands, as bits of a set.
enum Cmd : uint32_t {
  kSynth = 1u << 0,
  kPrepare = 1u << 1,
  kLoader = 1u << 2,
  kDownload = 1u << 3,
  kTrain = 1u << 4,
  kEval = 1u << 5,
  kPredict = 1u << 6,
  kExport = 1u << 7,
  kBenchData = 1u << 8,
  kBenchModel = 1u << 9,
  kBenchLadder = 1u << 10,
};
inline constexpr uint32_t kBenches = kBenchData | kBenchModel | kBenchLadder;
// "bench model", "train", ...
std::string command_name(Cmd cmd);
std::vector<Cmd> all_commands();

// What the options of every command fill in. Each command reads the fields its options set (apps/*_commands.cpp).
struct Params {
  train::TrainConfig train;  // the run spec and execution options; other commands read the parts they share
  std::string resume;        // train: a run folder, or auto
  int nproc_per_node = 0;    // train: start N local ranks
  std::string mirror;        // weights (train, export) or the data set's archives (data download)
  std::filesystem::path checkpoint, out;
  std::vector<std::filesystem::path> input, images;  // predict: --input, and the images named positionally
  train::InferenceRequest inference;                 // eval, predict (its image size: train.spec.image_size)
  bool native_resolution = false;                    // eval
  std::string split = "trainval";  // loader, bench data
  bool eval_transforms = false;    // loader
  data::SynthOptions synth;        // synth (its out and seed come from --out and --seed)
  bool quarantine = false, restore = false, no_prepare = false;
  std::string format = "torchscript";  // export
  bool optimize = false;               // export: TorchScript
  bool force = false;                  // export: overwrite --out
  int opset = 17;                      // export: ONNX
  std::vector<int> static_shape;       // export: ONNX, N,H,W
  bool aux = false, fp16 = false;      // export: ONNX
  // benchmarks
  std::vector<int> worker_counts = {0, 1, 2, 4, 8};  // bench data
  int repeats = 3;
  int warmup = -1;  // bench model; -1: 1 on the CPU, 5 on CUDA
  std::string cases, variants, optimizer_impls = "fused";
  double compile_timeout = 600;       // bench model: seconds for each torch.compile variant's Python process
  std::filesystem::path ceilings;     // bench model: measured ceilings (scripts/gpu_ceilings.py's JSON)
  std::string rungs;                  // bench ladder: which rungs (empty: all)
  int steps = 6;  // bench ladder: steps per epoch and process
  int ranks = 2;  // bench ladder: DDP processes
  bool no_python = false, no_compile = false;
  std::string python;
  std::filesystem::path json, svg, work_dir;
};

// The Params a command starts from: the structs' defaults, and the few a command sets apart (bench data batches 16,
// export traces at 520, the ladder's small runs).
Params defaults_for(Cmd cmd);

struct OptionDecl {
  std::string names;  // CLI11 spellings, kebab case: "--num-workers", "--pin-memory,!--no-pin-memory"
  std::string help;
  uint32_t commands = 0;  // the commands that take it
  uint32_t required = 0;  // the commands where it must be given
  // Adds the option to `app` under `names`, bound to its Params field.
  std::function<CLI::Option*(CLI::App* app, const std::string& names, const std::string& help, Params& p)> bind;
  // Arguments that give the option a valid value other than p's ("--lr", "0.52"; "--no-pin-memory" for a flag
  // that is on): what the test that no command accepts an option it ignores passes.
  std::function<std::vector<std::string>(const Params& p)> probe;
};

// The table, in --help order.
const std::vector<OptionDecl>& option_table();
// "--num-workers,--num_workers": the declared names and their snake_case twins.
std::string all_spellings(const std::string& names);
// Adds every option `cmd` takes, bound to `params`.
void add_options(CLI::App* app, Cmd cmd, Params& params);
// The run-spec key an option sets: its first name in snake case, when the run spec has that key (train/config.h's
// keys are the options' names); "" for every other option.
std::string spec_key_of(const OptionDecl& d);
// The run-spec keys the parsed command line named (a resume compares only those).
std::set<std::string> given_spec_keys(const CLI::App* app, Cmd cmd);

// CLI11's messages do not say what would have been valid; ours do.
std::string failure_message(const CLI::App* app, const CLI::Error& e);

}  // namespace petseg::cli
