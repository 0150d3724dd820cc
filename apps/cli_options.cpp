// The command line's shared pieces: helpful parse errors and the option groups several commands use.
#include "cli_options.h"

#include "dist/communicator.h"
#include "fetch/weights_cache.h"

namespace petseg::cli {

// CLI11's messages do not say what would have been valid; ours do.
std::string failure_message(const CLI::App* app, const CLI::Error& e) {
  const CLI::App* cmd = app;
  while (!cmd->get_subcommands().empty()) cmd = cmd->get_subcommands().front();
  auto list_commands = [](const CLI::App* parent) {
    std::string names;
    for (const CLI::App* sub : parent->get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
    return names;
  };
  std::string msg = e.what();
  const bool wants_command = !cmd->get_subcommands({}).empty() && cmd->get_subcommands().empty();
  if (wants_command && (dynamic_cast<const CLI::ExtrasError*>(&e) || dynamic_cast<const CLI::RequiredError*>(&e))) {
    const auto extra = cmd->remaining();
    msg = extra.empty() ? "a command is required" : "unknown command \"" + extra.front() + "\"";
    if (cmd != app) msg += " for `" + cmd->get_display_name() + "`";
    msg += "\nvalid commands: " + list_commands(cmd);
  } else if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    std::string valid;
    for (const CLI::Option* opt : cmd->get_options()) {
      for (const auto& name : opt->get_lnames()) valid += (valid.empty() ? "--" : ", --") + name;
    }
    msg += "\nvalid options of `" + cmd->get_display_name() + "`: " + valid;
  }
  return "petseg: error: " + msg + "\nRun with --help for more information.\n";
}

// Options every loader-driven command shares, with the original project's spellings as aliases.
void add_loader_options(CLI::App* cmd, data::LoaderOptions& lo, std::string& border) {
  cmd->add_option("--batch-size,--batch_size", lo.batch_size, "Samples per batch")->capture_default_str();
  cmd->add_option("--image-size,--image_size", lo.image_size, "Square crop/resize size in pixels")
      ->capture_default_str();
  cmd->add_option("--num-workers,--num_workers", lo.num_workers, "Loader threads (0: load inline)")
      ->capture_default_str();
  cmd->add_flag("--pin-memory,--pin_memory", lo.pin_memory, "Collate into page-locked memory (CUDA builds)");
  cmd->add_option("--border", border, "Trimap border: 3class (its own class) or ignore (index 255)")
      ->check(CLI::IsMember(data::kBorderChoices))
      ->capture_default_str();
  cmd->add_option("--seed", lo.seed, "Seed of shuffling and augmentation")->capture_default_str();
}

void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device, "auto (CUDA where a GPU is), cpu or cuda")
      ->check(CLI::IsMember(kDeviceChoices))
      ->capture_default_str();
}

// The model options of every command that builds one.
void resolve_model_weights(model::ModelConfig& mc, const std::string& mirror) {
  mc.weights = fetch::resolve_weights(mc.weights.string(), fetch::WeightsRole::kModel, mc.backbone, mirror);
  mc.backbone_weights =
      fetch::resolve_weights(mc.backbone_weights.string(), fetch::WeightsRole::kBackbone, mc.backbone, mirror);
}

void add_model_options(CLI::App* cmd, model::ModelConfig& mc, std::string& mirror) {
  cmd->add_option("--backbone", mc.backbone, "resnet50 or resnet101")
      ->check(CLI::IsMember(model::kBackboneChoices))
      ->capture_default_str();
  cmd->add_option("--num-classes,--num_classes", mc.num_classes, "Output classes (replaces classifier.4)")
      ->capture_default_str();
  cmd->add_flag("--aux-loss,--aux_loss", mc.aux_loss, "Build the FCN aux head on layer3");
  cmd->add_option("--weights", mc.weights,
                  "torchvision DeepLabV3 weights: coco (downloaded once into torch.hub's cache), a file name such as "
                  "deeplabv3_resnet101_coco-586e9e4e.pth, or a path");
  cmd->add_option("--backbone-weights,--backbone_weights", mc.backbone_weights,
                  "ImageNet ResNet weights for the backbone only: imagenet, a file name such as "
                  "resnet101-63fe2227.pth, or a path");
  cmd->add_option("--mirror", mirror,
                  "Base URL of a server with torchvision's weight file names (default: $PETSEG_WEIGHTS_MIRROR, else "
                  "download.pytorch.org)");
  cmd->add_flag("--freeze-backbone,--freeze_backbone", mc.freeze_backbone, "Keep the backbone fixed");
}

void add_train_options(CLI::App* cmd, train::TrainConfig& tc, std::string& resume, int& nproc_per_node,
                       std::string& mirror) {
  cmd->add_option("--data", tc.data, "Data set folder (default: the embedded synthetic set)");
  cmd->add_option("--runs-dir,--runs_dir", tc.runs_dir, "Where run folders go")->capture_default_str();
  cmd->add_option("--name", tc.name, "Run name (default: a timestamp)");
  cmd->add_option("--resume", resume,
                  "Continue the run in this folder exactly where it stopped; auto: continue --name if it holds a "
                  "checkpoint of the same configuration, else start it (for jobs torchrun restarts)");
  cmd->add_option("--epochs", tc.epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size,--batch_size", tc.batch_size, "Samples per step")->capture_default_str();
  cmd->add_option("--image-size,--image_size", tc.image_size, "Crop size in pixels")->capture_default_str();
  cmd->add_option("--lr", tc.lr, "Base learning rate (poly decay, power 0.9, per step)")->capture_default_str();
  cmd->add_option("--optimizer", tc.optimizer, "sgd (momentum 0.9, wd 1e-4) or adam")
      ->check(CLI::IsMember(train::kOptimizerChoices))
      ->capture_default_str();
  cmd->add_option("--warmup-iters,--warmup_iters", tc.warmup_iters, "Linear warm-up steps")->capture_default_str();
  cmd->add_option("--border", tc.border, "Trimap border: 3class or ignore")
      ->check(CLI::IsMember(data::kBorderChoices))
      ->capture_default_str();
  cmd->add_option("--seed", tc.seed, "Seed of initialization, shuffling and augmentation")->capture_default_str();
  add_device_option(cmd, tc.device);
  cmd->add_option("--amp", tc.amp, "Autocast: off, bf16, or fp16 (with dynamic loss scaling)")
      ->check(CLI::IsMember(train::kAmpChoices))
      ->capture_default_str();
  cmd->add_flag("--channels-last,--channels_last", tc.channels_last, "NHWC memory layout");
  cmd->add_option("--num-workers,--num_workers", tc.num_workers, "Loader threads")->capture_default_str();
  cmd->add_flag("--pin-memory,--pin_memory,!--no-pin-memory,!--no_pin_memory", tc.pin_memory,
                "Page-locked batches and non-blocking copies (default when training on CUDA)");
  cmd->add_flag("!--no-cudnn-benchmark,!--no_cudnn_benchmark", tc.cudnn_benchmark,
                "CUDA: keep cuDNN's default algorithms instead of timing them once per input shape");
  cmd->add_flag("--torch-script,--torch_script", tc.torch_script, "Run the model through TorchScript");
  cmd->add_flag("--data-parallel,--data_parallel", tc.data_parallel,
                "Split each batch over all visible GPUs in one process (torch.nn.DataParallel)");
  cmd->add_flag("--sync-bn,--sync_bn", tc.sync_bn, "BatchNorm statistics over all ranks (SyncBatchNorm)");
  cmd->add_flag("--distributed,--ddp", tc.distributed,
                "One process per rank (torchrun environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)");
  cmd->add_option("--nproc-per-node,--nproc_per_node", nproc_per_node, "Start N local ranks (implies --distributed)");
  cmd->add_option("--backend", tc.backend, "Distributed backend: auto (gloo on CPU, nccl on GPU), gloo, nccl")
      ->check(CLI::IsMember(dist::kBackendChoices))
      ->capture_default_str();
  cmd->add_option("--dist-timeout,--dist_timeout", tc.dist_timeout_s,
                  "Seconds before a silent rank ends the run with an error")
      ->capture_default_str();
  cmd->add_option("--log-interval,--log_interval", tc.log_interval, "Steps between loss read-backs")
      ->capture_default_str();
  cmd->add_option("--profile", tc.profile_steps, "Record N steps with the autograd profiler (trace.json)");
  cmd->add_option("--max-steps,--max_steps", tc.max_steps_per_epoch, "Stop each epoch after N steps (dry runs)");
  cmd->add_option("--stop-after,--stop_after", tc.stop_after_steps,
                  "Stop as on Ctrl-C after N steps in total (checkpoint, exit 130)");
  cmd->add_option("--eval-batches,--eval_batches", tc.eval_max_batches, "Evaluate on N batches only (0: all)");
  add_model_options(cmd, tc.model, mirror);
}

}  // namespace petseg::cli
