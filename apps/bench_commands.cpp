// bench data | model | ladder: measurements side by side with the Python reference.
#include <iostream>
#include <memory>

#include "bench/data_bench.h"
#include "bench/ladder_bench.h"
#include "bench/model_bench.h"
#include "cli_options.h"
#include "commands.h"
#include "data/synth.h"
#include "model/resnet.h"

namespace petseg::cli {
namespace {

void add_backbone_option(CLI::App* cmd, std::string& backbone) {
  cmd->add_option("--backbone", backbone, "resnet50 or resnet101")
      ->check(CLI::IsMember(model::kBackboneChoices))
      ->capture_default_str();
}

void add_python_options(CLI::App* cmd, bool& no_python, std::string& python, std::filesystem::path& json) {
  cmd->add_flag("--no-python", no_python, "Skip the Python reference");
  cmd->add_option("--python", python, "Python interpreter of the reference (default: the pinned environment)");
  cmd->add_option("--json", json, "Also write the results as JSON");
}

Command add_bench_data(CLI::App* bench) {
  struct Options {
    bench::DataBenchOptions bench;
    std::string data, border = "3class", split = "all";
    bool no_python = false;
  };
  auto o = std::make_shared<Options>();
  o->bench.loader.batch_size = 16;
  auto* cmd = bench->add_subcommand("data", "Loader images/s per worker count vs torch DataLoader");
  cmd->add_option("--data", o->data, "Data set folder (default: the embedded synthetic set)");
  cmd->add_option("--workers", o->bench.workers, "Worker counts to measure")->delimiter(',')->capture_default_str();
  cmd->add_option("--split", o->split, "trainval, test or all")->capture_default_str();
  cmd->add_option("--epochs", o->bench.epochs, "Epochs per measurement")->capture_default_str();
  cmd->add_option("--repeats", o->bench.repeats, "Measurements per row (median reported)")->capture_default_str();
  add_python_options(cmd, o->no_python, o->bench.python_exe, o->bench.json_out);
  add_loader_options(cmd, o->bench.loader, o->border);
  return {cmd, [o] {
            o->bench.loader.border = data::parse_border_mode(o->border);
            o->bench.data = o->data.empty() ? data::default_dataset() : std::filesystem::path(o->data);
            o->bench.python = !o->no_python;
            o->bench.split = data::parse_split(o->split);
            std::cout << bench::format_data_bench(bench::run_data_bench(o->bench), o->bench);
            return 0;
          }};
}

Command add_bench_model(CLI::App* bench, const GlobalOptions& global) {
  struct Options {
    bench::ModelBenchOptions bench;
    bool no_python = false, no_compile = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = bench->add_subcommand(
      "model", "Eval forward and train step per precision, layout and mode vs torchvision (and torch.compile)");
  add_backbone_option(cmd, o->bench.backbone);
  add_device_option(cmd, o->bench.device);
  cmd->add_option("--cases", o->bench.cases, "KIND:BATCH:SIZE list, e.g. train:8:520,infer:8:520");
  cmd->add_option("--variants", o->bench.variants,
                  "[torchscript_|compile_][cl_](fp32|tf32|bf16|fp16) list, e.g. fp32,cl_bf16,compile");
  cmd->add_option("--repeats", o->bench.repeats, "Timed steps per row (median; default 3 CPU, 10 CUDA)");
  cmd->add_option("--warmup", o->bench.warmup, "Untimed steps first (default 1 CPU, 5 CUDA)");
  cmd->add_flag("--no-compile", o->no_compile, "Skip Python's torch.compile variants");
  cmd->add_option("--optimizer-impl", o->bench.optimizer_impls,
                  "petseg's train-step SGD: fused, loop (libtorch's per-parameter SGD) or both, e.g. fused,loop")
      ->capture_default_str();
  add_python_options(cmd, o->no_python, o->bench.python_exe, o->bench.json_out);
  return {cmd, [o, &global] {
            o->bench.threads = global.threads;
            o->bench.python = !o->no_python;
            o->bench.compile = !o->no_compile;
            std::cout << bench::format_model_bench(bench::run_model_bench(o->bench));
            return 0;
          }};
}

Command add_bench_ladder(CLI::App* bench) {
  struct Options {
    bench::LadderOptions ladder;
    bool no_python = false, no_compile = false;
  };
  auto o = std::make_shared<Options>();
  bench::LadderOptions& l = o->ladder;
  auto* cmd = bench->add_subcommand(
      "ladder",
      "The original's optimization ladder (workers, pinned memory, TorchScript, DataParallel, DDP) vs Python");
  cmd->add_option("--data", l.data, "Data set folder (default: the embedded synthetic set)");
  add_backbone_option(cmd, l.backbone);
  add_device_option(cmd, l.device);
  cmd->add_option("--image-size", l.image_size, "Crop size")->capture_default_str();
  cmd->add_option("--batch-size", l.batch_size, "Per process")->capture_default_str();
  cmd->add_option("--steps", l.steps, "Steps per epoch and process")->capture_default_str();
  cmd->add_option("--epochs", l.epochs, "Epochs per run; the last is measured")->capture_default_str();
  cmd->add_option("--workers", l.workers, "Worker count of the workers rung")->capture_default_str();
  cmd->add_option("--ranks", l.ranks, "Processes of the DDP rung (CUDA: at most the GPUs)")->capture_default_str();
  cmd->add_option("--repeats", l.repeats, "Runs per rung and side (median)")->capture_default_str();
  cmd->add_flag("--no-compile", o->no_compile, "Skip Python's torch.compile rung");
  cmd->add_option("--work-dir", l.work_dir, "Keep the runs and their logs here");
  add_python_options(cmd, o->no_python, l.python_exe, l.json_out);
  cmd->add_option("--svg", l.svg_out, "Also write a bar chart (SVG)");
  return {cmd, [o] {
            o->ladder.python = !o->no_python;
            o->ladder.compile = !o->no_compile;
            std::cout << bench::format_ladder(bench::run_ladder(o->ladder));
            return 0;
          }};
}

}  // namespace

std::vector<Command> add_bench_commands(CLI::App& app, const GlobalOptions& global) {
  auto* bench = app.add_subcommand("bench", "Benchmarks, measured side by side with the Python reference");
  bench->require_subcommand(1);
  return {add_bench_data(bench), add_bench_model(bench, global), add_bench_ladder(bench)};
}

}  // namespace petseg::cli
