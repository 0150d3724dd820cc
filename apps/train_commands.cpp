// train, eval, predict and export: the model commands.
#include <cstdlib>
#include <memory>

#include "cli_options.h"
#include "commands.h"
#include "core/log.h"
#include "dist/launcher.h"
#include "model/factory.h"
#include "model/torchscript.h"
#include "train/predict.h"
#include "train/trainer.h"

namespace petseg::cli {
namespace {

// This very command line without --nproc-per-node, plus --distributed: what each local rank runs.
std::vector<std::string> rank_command_line(int argc, char** argv) {
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
  return args;
}

Command add_train(CLI::App& app, const GlobalOptions& global, int argc, char** argv) {
  struct Options {
    train::TrainConfig config;
    std::string resume, mirror;
    int nproc_per_node = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("train", "Transfer-learn DeepLabV3 on the pet trimaps (runs/<name>/)");
  add_train_options(cmd, o->config, o->resume, o->nproc_per_node, o->mirror);
  return {cmd, [o, cmd, &global, argc, argv] {
            if (o->nproc_per_node > 0 && !std::getenv("RANK")) {
              // Relaunch this very command line once per rank, as torchrun would.
              return dist::launch_local(o->nproc_per_node, rank_command_line(argc, argv));
            }
            train::TrainConfig c = o->config;
            c.threads = global.threads;
            resolve_model_weights(c.model, o->mirror);
            if (cmd->count("--num-classes") + cmd->count("--num_classes") == 0) c.model.num_classes = 0;
            const bool resume_auto = o->resume == "auto";
            if (!o->resume.empty() && !resume_auto && cmd->count("--epochs") == 0) c.epochs = 0;  // the run's own
            std::optional<std::filesystem::path> resume_dir;
            if (!o->resume.empty() && !resume_auto) resume_dir = o->resume;
            return train::run_train(c, resume_dir, resume_auto);
          }};
}

Command add_eval(CLI::App& app) {
  struct Options {
    std::filesystem::path checkpoint, data;
    bool script = false;
    int workers = 2;
    std::string device = "auto";
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("eval", "IoU, mIoU and pixel accuracy of a checkpoint on the test split");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/best.pt or last.pt")->required();
  cmd->add_option("--data", o->data, "Data set folder (default: the run's)");
  cmd->add_flag("--torch-script,--torch_script", o->script, "Run the model through TorchScript");
  cmd->add_option("--num-workers,--num_workers", o->workers, "Loader threads")->capture_default_str();
  add_device_option(cmd, o->device);
  return {cmd, [o] {
            train::run_eval(o->checkpoint, o->data, o->script, o->workers, o->device);
            return 0;
          }};
}

Command add_predict(CLI::App& app) {
  auto o = std::make_shared<train::PredictOptions>();
  auto* cmd = app.add_subcommand("predict", "Masks (trimap values) and overlays for images");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/best.pt")->required();
  cmd->add_option("--input", o->input, "An image or a folder of images")->required();
  cmd->add_option("--out", o->out, "Output folder")->required();
  cmd->add_flag("--torch-script,--torch_script", o->torch_script, "Frozen, optimized TorchScript");
  add_device_option(cmd, o->device);
  return {cmd, [o] { return train::run_predict(*o).written == 0 ? 1 : 0; }};
}

Command add_export(CLI::App& app) {
  struct Options {
    model::ModelConfig model;
    model::ExportOptions export_options;
    std::string format = "torchscript", mirror;
    std::filesystem::path out;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("export", "Write the model as TorchScript or as a torchvision state dict");
  cmd->add_option("--format", o->format, "torchscript (torch.jit.load) or state-dict (torch.load)")
      ->check(CLI::IsMember({"torchscript", "state-dict"}))
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output file")->required();
  cmd->add_option("--image-size,--image_size", o->export_options.image_size, "Size of the tracing example")
      ->capture_default_str();
  cmd->add_flag("--optimize", o->export_options.optimize, "Freeze for inference (TorchScript)");
  add_model_options(cmd, o->model, o->mirror);
  return {cmd, [o] {
            resolve_model_weights(o->model, o->mirror);
            model::BuiltModel built = model::build_model(o->model);
            for (const auto& line : model::describe(built, o->model)) log_info(line);
            if (o->format == "torchscript") {
              model::export_torchscript(*built.model, o->out, o->export_options);
            } else {
              model::save_state_dict(model::module_state_dict(*built.model), o->out);
            }
            log_info("wrote ", o->out.string(), " (", o->format, ")");
            return 0;
          }};
}

}  // namespace

std::vector<Command> add_train_commands(CLI::App& app, const GlobalOptions& global, int argc, char** argv) {
  return {add_train(app, global, argc, argv), add_eval(app), add_predict(app), add_export(app)};
}

}  // namespace petseg::cli
