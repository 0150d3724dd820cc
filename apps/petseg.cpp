// petseg: the command line. Each command parses its options here and calls the library; see README.md.
#include <CLI/CLI.hpp>

#include "cli_options.h"

#include <cstdio>
#include <iostream>

#include "bench/data_bench.h"
#include "bench/ladder_bench.h"
#include "bench/model_bench.h"
#include "core/device.h"
#include "core/log.h"
#include "data/oxford_pets.h"
#include "data/synth.h"
#include "dist/launcher.h"
#include "model/factory.h"
#include "model/torchscript.h"
#include "train/predict.h"
#include "train/trainer.h"

using namespace petseg;
using namespace petseg::cli;

int main(int argc, char** argv) {
  CLI::App app{"petseg: DeepLabV3-ResNet101 transfer learning on the Oxford-IIIT Pet data set, in C++"};
  app.set_version_flag("--version", std::string("petseg ") + PETSEG_VERSION);
  app.require_subcommand(1);
  app.failure_message(failure_message);
  int threads = 0;
  bool quiet = false, verbose = false;
  app.add_option("--threads", threads, "Intra-op threads (0: one per core)")->capture_default_str();
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", verbose, "Debug messages too");

  // synth
  data::SynthOptions synth;
  auto* synth_cmd = app.add_subcommand("synth", "Write a synthetic data set in the exact Oxford-IIIT Pet layout");
  synth_cmd->add_option("--out", synth.out, "Output folder (new or empty)")->required();
  synth_cmd->add_option("--count", synth.count, "Samples named in the split files")->capture_default_str();
  synth_cmd->add_option("--seed", synth.seed, "Seed; the same seed gives the same files")->capture_default_str();
  synth_cmd->add_option("--min-side", synth.min_side, "Smallest image side in pixels")->capture_default_str();
  synth_cmd->add_option("--max-side", synth.max_side, "Largest image side in pixels")->capture_default_str();
  synth_cmd->add_flag("--junk", synth.junk, "Also plant every kind of broken file the real data set has");

  // prepare
  std::string prepare_dir;
  data::PrepareOptions prepare;
  bool restore = false;
  auto* prepare_cmd =
      app.add_subcommand("prepare", "Check every sample, write the manifest, optionally quarantine bad files");
  prepare_cmd->add_option("--data", prepare_dir, "Data set folder (images/ and annotations/)")->required();
  prepare_cmd->add_flag("--quarantine", prepare.quarantine, "MOVE rejected files into DATA/quarantine/");
  prepare_cmd->add_flag("--restore", restore, "Move quarantined files back where they were");

  // loader
  std::string loader_data, loader_split = "trainval", loader_border = "3class";
  data::LoaderOptions loader;
  int loader_epochs = 1;
  bool loader_eval = false;
  auto* loader_cmd = app.add_subcommand("loader", "Run the training data loader and report its throughput");
  loader_cmd->add_option("--data", loader_data, "Data set folder (default: the embedded synthetic set)");
  loader_cmd->add_option("--split", loader_split, "trainval, test or all")->capture_default_str();
  loader_cmd->add_option("--epochs", loader_epochs, "Epochs to run")->capture_default_str();
  loader_cmd->add_flag("--eval-transforms", loader_eval, "Resize only, as evaluation does (no augmentation)");
  add_loader_options(loader_cmd, loader, loader_border);

  // train
  train::TrainConfig tc;
  std::string resume;
  int nproc_per_node = 0;
  auto* train_cmd = app.add_subcommand("train", "Transfer-learn DeepLabV3 on the pet trimaps (runs/<name>/)");
  add_train_options(train_cmd, tc, resume, nproc_per_node);

  // eval
  std::filesystem::path eval_checkpoint, eval_data;
  bool eval_script = false;
  int eval_workers = 2;
  auto* eval_cmd = app.add_subcommand("eval", "IoU, mIoU and pixel accuracy of a checkpoint on the test split");
  eval_cmd->add_option("--checkpoint", eval_checkpoint, "runs/<name>/best.pt or last.pt")->required();
  eval_cmd->add_option("--data", eval_data, "Data set folder (default: the run's)");
  eval_cmd->add_flag("--torch-script,--torch_script", eval_script, "Run the model through TorchScript");
  eval_cmd->add_option("--num-workers,--num_workers", eval_workers, "Loader threads")->capture_default_str();
  std::string eval_device = "auto";
  eval_cmd->add_option("--device", eval_device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();

  // predict
  train::PredictOptions predict;
  auto* predict_cmd = app.add_subcommand("predict", "Masks (trimap values) and overlays for images");
  predict_cmd->add_option("--checkpoint", predict.checkpoint, "runs/<name>/best.pt")->required();
  predict_cmd->add_option("--input", predict.input, "An image or a folder of images")->required();
  predict_cmd->add_option("--out", predict.out, "Output folder")->required();
  predict_cmd->add_flag("--torch-script,--torch_script", predict.torch_script, "Frozen, optimized TorchScript");
  predict_cmd->add_option("--device", predict.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();

  // export
  model::ModelConfig export_model;
  model::ExportOptions export_options;
  std::string export_format = "torchscript";
  std::filesystem::path export_out;
  auto* export_cmd = app.add_subcommand("export", "Write the model as TorchScript or as a torchvision state dict");
  export_cmd->add_option("--format", export_format, "torchscript (torch.jit.load) or state-dict (torch.load)")
      ->check(CLI::IsMember({"torchscript", "state-dict"}))
      ->capture_default_str();
  export_cmd->add_option("--out", export_out, "Output file")->required();
  export_cmd->add_option("--image-size,--image_size", export_options.image_size, "Size of the tracing example")
      ->capture_default_str();
  export_cmd->add_flag("--optimize", export_options.optimize, "Freeze for inference (TorchScript)");
  add_model_options(export_cmd, export_model);

  // bench
  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks, measured side by side with the Python reference");
  bench_cmd->require_subcommand(1);
  bench::DataBenchOptions bench_data;
  bench_data.loader.batch_size = 16;
  std::string bench_data_dir, bench_border = "3class";
  bool no_python = false;
  auto* bench_data_cmd = bench_cmd->add_subcommand("data", "Loader images/s per worker count vs torch DataLoader");
  bench_data_cmd->add_option("--data", bench_data_dir, "Data set folder (default: the embedded synthetic set)");
  bench_data_cmd->add_option("--workers", bench_data.workers, "Worker counts to measure")
      ->delimiter(',')
      ->capture_default_str();
  std::string bench_split = "all";
  bench_data_cmd->add_option("--split", bench_split, "trainval, test or all")->capture_default_str();
  bench_data_cmd->add_option("--epochs", bench_data.epochs, "Epochs per measurement")->capture_default_str();
  bench_data_cmd->add_option("--repeats", bench_data.repeats, "Measurements per row (median reported)")
      ->capture_default_str();
  bench_data_cmd->add_flag("--no-python", no_python, "Skip the Python reference");
  bench_data_cmd->add_option("--python", bench_data.python_exe, "Python interpreter of the reference")
      ->capture_default_str();
  bench_data_cmd->add_option("--json", bench_data.json_out, "Also write the results as JSON");
  add_loader_options(bench_data_cmd, bench_data.loader, bench_border);
  bench::ModelBenchOptions bench_model;
  bool bench_model_no_python = false, bench_model_no_compile = false;
  auto* bench_model_cmd = bench_cmd->add_subcommand(
      "model", "Eval forward and train step per precision, layout and mode vs torchvision (and torch.compile)");
  bench_model_cmd->add_option("--backbone", bench_model.backbone, "resnet50 or resnet101")
      ->check(CLI::IsMember({"resnet50", "resnet101"}))
      ->capture_default_str();
  bench_model_cmd->add_option("--device", bench_model.device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  bench_model_cmd->add_option("--cases", bench_model.cases, "KIND:BATCH:SIZE list, e.g. train:8:520,infer:8:520");
  bench_model_cmd->add_option("--variants", bench_model.variants,
                              "[torchscript_|compile_][cl_](fp32|tf32|bf16|fp16) list, e.g. fp32,cl_bf16,compile");
  bench_model_cmd->add_option("--repeats", bench_model.repeats, "Timed steps per row (median; default 3 CPU, 10 CUDA)");
  bench_model_cmd->add_option("--warmup", bench_model.warmup, "Untimed steps first (default 1 CPU, 5 CUDA)");
  bench_model_cmd->add_flag("--no-python", bench_model_no_python, "Skip the Python reference");
  bench_model_cmd->add_flag("--no-compile", bench_model_no_compile, "Skip Python's torch.compile variants");
  bench_model_cmd->add_option("--python", bench_model.python_exe, "Python interpreter of the reference");
  bench_model_cmd->add_option("--json", bench_model.json_out, "Also write the results as JSON");
  bench::LadderOptions ladder;
  bool ladder_no_python = false, ladder_no_compile = false;
  auto* bench_ladder_cmd = bench_cmd->add_subcommand(
      "ladder",
      "The original's optimization ladder (workers, pinned memory, TorchScript, DataParallel, DDP) vs Python");
  bench_ladder_cmd->add_option("--data", ladder.data, "Data set folder (default: the embedded synthetic set)");
  bench_ladder_cmd->add_option("--backbone", ladder.backbone, "resnet50 or resnet101")
      ->check(CLI::IsMember({"resnet50", "resnet101"}))
      ->capture_default_str();
  bench_ladder_cmd->add_option("--device", ladder.device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  bench_ladder_cmd->add_option("--image-size", ladder.image_size, "Crop size")->capture_default_str();
  bench_ladder_cmd->add_option("--batch-size", ladder.batch_size, "Per process")->capture_default_str();
  bench_ladder_cmd->add_option("--steps", ladder.steps, "Steps per epoch and process")->capture_default_str();
  bench_ladder_cmd->add_option("--epochs", ladder.epochs, "Epochs per run; the last is measured")
      ->capture_default_str();
  bench_ladder_cmd->add_option("--workers", ladder.workers, "Worker count of the workers rung")->capture_default_str();
  bench_ladder_cmd->add_option("--ranks", ladder.ranks, "Processes of the DDP rung (CUDA: at most the GPUs)")
      ->capture_default_str();
  bench_ladder_cmd->add_option("--repeats", ladder.repeats, "Runs per rung and side (median)")->capture_default_str();
  bench_ladder_cmd->add_flag("--no-compile", ladder_no_compile, "Skip Python's torch.compile rung");
  bench_ladder_cmd->add_option("--work-dir", ladder.work_dir, "Keep the runs and their logs here");
  bench_ladder_cmd->add_flag("--no-python", ladder_no_python, "Skip the Python reference");
  bench_ladder_cmd->add_option("--python", ladder.python_exe, "Python interpreter of the reference")
      ->capture_default_str();
  bench_ladder_cmd->add_option("--json", ladder.json_out, "Also write the results as JSON");
  bench_ladder_cmd->add_option("--svg", ladder.svg_out, "Also write a bar chart (SVG)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // 2: usage error, as most command-line tools
  }

  try {
    if (quiet) set_log_level(LogLevel::kWarning);
    if (verbose) set_log_level(LogLevel::kDebug);
    configure_threads(threads);
    log_debug(runtime_summary());
    if (*synth_cmd) {
      const data::SynthReport r = data::synthesize(synth);
      log_info(r.reused ? "already there: " : "wrote ", synth.out.string(), ": trainval ", r.trainval, ", test ",
               r.test, ", in no split ", r.unlisted,
               r.junk.empty() ? "" : petseg::detail::str_cat(", junk ", r.junk.size()));
    } else if (*prepare_cmd) {
      if (restore) {
        log_info("restored ", data::restore_quarantine(prepare_dir), " files; run petseg prepare again");
      } else {
        std::cout << data::format_prepare_summary(data::prepare_dataset(prepare_dir, prepare), prepare_dir);
      }
    } else if (*loader_cmd) {
      loader.border = data::parse_border_mode(loader_border);
      loader.train = !loader_eval;
      const auto dir = loader_data.empty() ? data::default_dataset() : std::filesystem::path(loader_data);
      bench::run_loader_pass(dir, data::parse_split(loader_split), loader, loader_epochs);
    } else if (*train_cmd) {
      if (nproc_per_node > 0 && !std::getenv("RANK")) {
        // Relaunch this very command line once per rank, as torchrun would.
        std::vector<std::string> args;
        for (int i = 0; i < argc; ++i) {
          const std::string a = argv[i];
          if (a == "--nproc-per-node" || a == "--nproc_per_node") {
            ++i;
            continue;
          }
          if (a.rfind("--nproc-per-node=", 0) == 0 || a.rfind("--nproc_per_node=", 0) == 0) continue;
          args.push_back(a);
        }
        args.push_back("--distributed");
        return dist::launch_local(nproc_per_node, args);
      }
      tc.threads = threads;
      if (train_cmd->count("--num-classes") + train_cmd->count("--num_classes") == 0) tc.model.num_classes = 0;
      if (!resume.empty() && train_cmd->count("--epochs") == 0) tc.epochs = 0;  // keep the run's own
      return train::run_train(tc, resume.empty() ? std::nullopt : std::optional<std::filesystem::path>(resume));
    } else if (*eval_cmd) {
      train::run_eval(eval_checkpoint, eval_data, eval_script, eval_workers, eval_device);
    } else if (*predict_cmd) {
      const auto summary = train::run_predict(predict);
      if (summary.written == 0) return 1;
    } else if (*export_cmd) {
      model::BuiltModel built = model::build_model(export_model);
      for (const auto& line : model::describe(built, export_model)) log_info(line);
      if (export_format == "torchscript") {
        model::export_torchscript(*built.model, export_out, export_options);
      } else {
        model::save_state_dict(model::module_state_dict(*built.model), export_out);
      }
      log_info("wrote ", export_out.string(), " (", export_format, ")");
    } else if (*bench_model_cmd) {
      bench_model.threads = threads;
      bench_model.python = !bench_model_no_python;
      bench_model.compile = !bench_model_no_compile;
      std::cout << bench::format_model_bench(bench::run_model_bench(bench_model));
    } else if (*bench_ladder_cmd) {
      ladder.python = !ladder_no_python;
      ladder.compile = !ladder_no_compile;
      std::cout << bench::format_ladder(bench::run_ladder(ladder));
    } else if (*bench_data_cmd) {
      bench_data.loader.border = data::parse_border_mode(bench_border);
      bench_data.data = bench_data_dir.empty() ? data::default_dataset() : std::filesystem::path(bench_data_dir);
      bench_data.python = !no_python;
      bench_data.split = data::parse_split(bench_split);
      const auto result = bench::run_data_bench(bench_data);
      std::cout << bench::format_data_bench(result, bench_data);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petseg: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
