// train, eval, predict and export: the model commands.
#include <cstdlib>
#include <memory>

#include "commands.h"
#include "core/check.h"
#include "core/log.h"
#include "distributed/launcher.h"
#include "plan_json.h"
#include "model/named_model.h"
#include "train/eval.h"
#include "train/export.h"
#include "train/predict.h"
#include "train/trainer.h"

namespace petseg::train {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EvalOptions, checkpoint, data, device, loader, torch_script, inference,
                                   native_resolution, json)
}

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

train::TrainRequest train_request(const Params& p, const CLI::App* app, const GlobalOptions& global) {
  train::TrainRequest r;
  r.config = p.train;
  r.config.exec.threads = global.threads;
  r.config.exec.mirror = p.mirror;
  r.spec_given = given_spec_keys(app, kTrain);
  if (p.resume == "auto") {
    r.resume_auto = true;
  } else if (!p.resume.empty()) {
    r.resume_dir = p.resume;
  }
  return r;
}

Command add_train(CLI::App& app, const GlobalOptions& global, int argc, char** argv) {
  Command c = declare_command(
      &app, kTrain, "train",
      "Transfer-learn a segmentation model (DeepLabV3-ResNet101 by default) on the pets or your own data (runs/<name>/)");
  auto p = c.params;
  CLI::App* cmd = c.app;
  c.plan = [p, cmd, &global] {
    const train::TrainRequest r = train_request(*p, cmd, global);
    return nlohmann::json{{"config", r.config},
                          {"resume_dir", r.resume_dir.value_or("")},
                          {"resume_auto", r.resume_auto},
                          {"nproc_per_node", p->nproc_per_node}};
  };
  c.run = [p, cmd, &global, argc, argv] {
    if (p->nproc_per_node > 0 && !std::getenv("RANK")) {
      // Relaunch this very command line once per rank, as torchrun would.
      return distributed::launch_local(p->nproc_per_node, rank_command_line(argc, argv));
    }
    return train::run_train(train_request(*p, cmd, global));
  };
  return c;
}

// The inference options of eval and predict; their image size is --image-size's (one option for every command).
train::InferenceRequest inference_request(const Params& p) {
  train::InferenceRequest r = p.inference;
  r.image_size = p.train.spec.image_size;
  return r;
}

train::EvalOptions eval_options(const Params& p) {
  const train::ExecOptions& e = p.train.exec;
  return {p.checkpoint, p.train.spec.data, e.device,           e.loader,
          e.torch_script, inference_request(p), p.native_resolution, p.json};
}

Command add_eval(CLI::App& app) {
  Command c = declare_command(&app, kEval, "eval",
                              "IoU, Dice, precision and recall per class of a checkpoint on the validation split");
  auto p = c.params;
  c.plan = [p] { return nlohmann::json(eval_options(*p)); };
  c.run = [p] {
    train::run_eval(eval_options(*p));
    return 0;
  };
  return c;
}

train::PredictOptions predict_options(const Params& p) {
  std::vector<std::filesystem::path> inputs = p.images;
  inputs.insert(inputs.end(), p.input.begin(), p.input.end());
  return {p.checkpoint, inputs, p.out, p.train.exec.torch_script, p.train.exec.device, inference_request(p)};
}

Command add_predict(CLI::App& app) {
  Command c = declare_command(&app, kPredict, "predict",
                              "Masks (trimap values) and overlays for images, at each image's own size");
  auto p = c.params;
  c.plan = [p] { return nlohmann::json(predict_options(*p)); };
  c.run = [p] { return train::run_predict(predict_options(*p)).written == 0 ? 1 : 0; };
  return c;
}

train::ExportRequest export_request(const Params& p) {
  train::ExportRequest r;
  r.model = p.train.spec.model;
  r.mirror = p.mirror;
  r.checkpoint = p.checkpoint;
  r.out = p.out;
  r.format = p.format;
  r.image_size = p.train.spec.image_size;
  r.optimize = p.optimize;
  r.force = p.force;
  r.opset = p.opset;
  r.static_shape = p.static_shape;
  r.aux = p.aux;
  r.fp16 = p.fp16;
  return r;
}

// Options that only one format reads, or that a checkpoint answers itself, are errors elsewhere (not ignored).
void check_export_options(const CLI::App* cmd, const Params& p) {
  for (const char* name : {"--opset", "--static", "--aux", "--fp16"}) {
    PETSEG_CHECK(p.format == "onnx" || cmd->count(name) == 0, name, " is for --format onnx");
  }
  PETSEG_CHECK(p.format == "torchscript" || cmd->count("--optimize") == 0, "--optimize is for --format torchscript");
}

Command add_export(CLI::App& app) {
  Command c = declare_command(&app, kExport, "export",
                              "Write a model (built, or a run's --checkpoint) as TorchScript, a torchvision state dict "
                              "or ONNX");
  auto p = c.params;
  CLI::App* cmd = c.app;
  // A checkpoint holds the model, its classes and the size it was trained at.
  for (const char* name : {"--model", "--backbone", "--num-classes", "--aux-loss", "--weights", "--backbone-weights",
                           "--mirror", "--image-size"}) {
    cmd->get_option("--checkpoint")->excludes(cmd->get_option(name));
  }
  c.plan = [p] { return nlohmann::json(export_request(*p)); };
  c.run = [p, cmd] {
    check_export_options(cmd, *p);
    train::run_export(export_request(*p));
    return 0;
  };
  return c;
}

}  // namespace

std::vector<Command> add_train_commands(CLI::App& app, const GlobalOptions& global, int argc, char** argv) {
  return {add_train(app, global, argc, argv), add_eval(app), add_predict(app), add_export(app)};
}

}  // namespace petseg::cli
