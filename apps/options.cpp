// The option table of the petseg command line (one declaration per option), the per-command defaults, and the
// parse-error messages.
#include "options.h"

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "data/layout.h"
#include "data/oxford_pets.h"
#include "distributed/communicator.h"
#include "model/factory.h"
#include "model/resnet.h"
#include "train/export.h"
#include "train/loss.h"

namespace petseg::cli {
namespace {

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// A valid value unlike `v`: a number 3 above it, another choice, another word or path.
template <class T>
std::string probe_of(const T& v, const Choices* choices) {
  if (choices) {
    for (const std::string& c : *choices) {
      if constexpr (std::is_same_v<T, std::string>) {
        if (c != v) return c;
      } else {
        return c;
      }
    }
  }
  if constexpr (std::is_same_v<T, double>) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v * 2 + 0.5);
    return text;
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v + 3);
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return v.empty() ? "/tmp/petseg-probe" : v.string() + "-probe";
  } else if constexpr (IsVector<T>::value) {
    return "3,5";
  } else {
    return v.empty() ? "probe" : v + "-probe";
  }
}

std::string first_name(const std::string& names) { return CLI::detail::split(names, ',').front(); }

// An option with a value, bound to the Params field `access` returns.
template <class Access>
OptionDecl value(const char* names, uint32_t commands, const char* help, Access access,
                 const Choices* choices = nullptr) {
  OptionDecl d;
  d.names = names;
  d.help = help;
  d.commands = commands;
  d.bind = [access, choices](CLI::App* app, const std::string& n, const std::string& h, Params& p) {
    auto& field = access(p);
    CLI::Option* o = app->add_option(n, field, h)->capture_default_str();
    if (choices) o->check(CLI::IsMember(*choices));
    if constexpr (IsVector<std::decay_t<decltype(field)>>::value) o->delimiter(',');
    return o;
  };
  d.probe = [access, choices, first = first_name(names)](const Params& p) {
    return std::vector<std::string>{first, probe_of(access(const_cast<Params&>(p)), choices)};
  };
  return d;
}

// A flag (with its negation, where `names` declares one) bound to a bool field.
template <class Access>
OptionDecl flag(const char* names, uint32_t commands, const char* help, Access access) {
  OptionDecl d;
  d.names = names;
  d.help = help;
  d.commands = commands;
  d.bind = [access, positive = names[0] != '!'](CLI::App* app, const std::string& n, const std::string& h, Params& p) {
    bool& field = access(p);
    return app->add_flag(n, field, field && positive ? h + " (default: on)" : h);
  };
  d.probe = [access, names](const Params& p) {
    // The spelling that flips the flag: a negated one ("!--no-x") when it is on.
    const bool on = access(const_cast<Params&>(p));
    for (const std::string& name : CLI::detail::split(names, ',')) {
      if ((name[0] == '!') == on) return std::vector<std::string>{on ? name.substr(1) : name};
    }
    return std::vector<std::string>{};
  };
  return d;
}

// Paths bound to a vector field, each path whole (no splitting at commas): --input and the positional images.
template <class Access>
OptionDecl paths(const char* names, uint32_t commands, const char* help, Access access) {
  OptionDecl d = value(names, commands, help, access);
  d.bind = [access](CLI::App* app, const std::string& n, const std::string& h, Params& p) {
    return app->add_option(n, access(p), h);
  };
  if (names[0] != '-') {  // a positional: its probe is a value alone
    d.probe = [](const Params&) { return std::vector<std::string>{"/tmp/petseg-probe.jpg"}; };
  }
  return d;
}

OptionDecl required_in(OptionDecl d, uint32_t commands) {
  d.required = commands;
  return d;
}

// --model NAME (torchvision's name) sets the arch and the backbone, so it excludes --backbone.
OptionDecl model_option(uint32_t commands) {
  OptionDecl d;
  d.names = "--model";
  d.help = "torchvision's segmentation model (--backbone picks a DeepLabV3's backbone instead)";
  d.commands = commands;
  d.bind = [](CLI::App* app, const std::string& n, const std::string& h, Params& p) {
    model::ModelConfig& m = p.train.spec.model;
    CLI::Option* o =
        app->add_option_function<std::string>(n, [&m](const std::string& v) { model::set_model_name(m, v); }, h)
            ->default_str(model::model_name(m))
            ->check(CLI::IsMember(model::kModelChoices));
    if (CLI::Option* backbone = app->get_option_no_throw("--backbone")) o->excludes(backbone);
    return o;
  };
  d.probe = [](const Params& p) {
    return std::vector<std::string>{"--model", probe_of(model::model_name(p.train.spec.model), &model::kModelChoices)};
  };
  return d;
}

#define PETSEG_P(member) [](Params & p) -> auto& { return p.member; }

const Choices kSplitWords = {"trainval", "test", "all", "train", "val"};  // data::parse_split's
constexpr uint32_t kModelBuilders = kTrain | kExport;
constexpr uint32_t kLoaders = kLoader | kBenchData;

// The data set, the loader and the run's schedule.
std::vector<OptionDecl> data_options() {
  return {
      required_in(value("--data", kLoaders | kTrain | kEval | kBenchLadder | kPrepare,
                             "Data set folder (default: the embedded synthetic set; eval: the checkpoint's; prepare: required)",
                             PETSEG_P(train.spec.data)),
                  kPrepare),
      value("--split", kLoaders, "trainval, test or all", PETSEG_P(split), &kSplitWords),
      value("--epochs", kLoaders | kTrain | kBenchLadder, "Epochs (bench ladder: the last is measured)",
                 PETSEG_P(train.spec.epochs)),
      value("--batch-size", kLoaders | kTrain | kBenchLadder, "Samples per batch (and per process)",
                 PETSEG_P(train.spec.batch_size)),
      value("--image-size", kLoaders | kTrain | kBenchLadder | kExport | kEval | kPredict,
            "Square crop in pixels (export: the tracing example's size; eval, predict: the square's side, or the "
            "shorter side with --resize shorter; 0: the checkpoint's)",
            PETSEG_P(train.spec.image_size)),
      value("--layout", kLoader | kTrain | kPrepare | kSynth,
                 "Data set layout: auto (recognised from the folder), oxford-pets, voc (Pascal VOC), folders "
                 "(images/ and masks/; synth: the layout to write)",
                 PETSEG_P(train.spec.layout), &data::layout_choices()),
      value("--val-fraction", kLoader | kTrain,
                 "folders without train.txt/val.txt: the share of images held out for validation (seeded by --seed)",
                 PETSEG_P(train.spec.val_fraction)),
      value("--class-colors", kLoader | kTrain | kPrepare,
                 "folders with RGB masks: a file of \"R,G,B name\" lines, one per class in class-id order",
                 PETSEG_P(train.spec.class_colors)),
      value("--ignore-index", kLoader | kTrain,
                 "Class-index and colour masks: the class the loss and the metrics ignore (255: the stored ignore "
                 "value; the pets: --border)",
                 PETSEG_P(train.spec.ignore_index)),
      value("--border", kLoaders | kTrain, "Trimap border: 3class (its own class) or ignore (index 255)",
                 PETSEG_P(train.spec.border), &data::kBorderChoices),
      value("--seed", kLoaders | kTrain | kSynth,
                 "Seed of initialization, shuffling and augmentation (synth: of the files)", PETSEG_P(train.spec.seed)),
      value("--num-workers", kLoader | kTrain | kEval | kBenchLadder,
            "Loader threads (0: load inline; bench ladder: the workers rung's)",
            PETSEG_P(train.exec.loader.num_workers)),
      flag("--pin-memory,!--no-pin-memory", kLoaders | kTrain | kEval,
           "Page-locked batches and non-blocking copies (on when the batches go to a GPU)",
           PETSEG_P(train.exec.loader.pin_memory)),
      flag("--eval-transforms", kLoader, "Resize only, as evaluation does (no augmentation)",
           PETSEG_P(eval_transforms)),
      value("--max-steps", kTrain, "Stop each epoch after N steps (dry runs)",
                 PETSEG_P(train.spec.max_steps)),
      value("--eval-batches", kTrain, "Evaluate on N batches only (0: all)",
                 PETSEG_P(train.spec.eval_batches)),
  };
}

// The model and how it trains.
std::vector<OptionDecl> model_options() {
  return {
      value("--backbone", kModelBuilders | kBenchModel | kBenchLadder, "DeepLabV3's backbone",
                 PETSEG_P(train.spec.model.backbone), &model::kBackboneChoices),
      model_option(kModelBuilders | kBenchModel),
      value("--num-classes", kModelBuilders,
                 "Output classes, replacing the heads' last layers (train: 0 takes the data set's)",
                 PETSEG_P(train.spec.model.num_classes)),
      flag("--aux-loss", kModelBuilders, "Build the FCN aux head (DeepLabV3, FCN)",
                PETSEG_P(train.spec.model.aux_loss)),
      value("--weights", kModelBuilders,
                 "torchvision weights of the model: coco (downloaded once into torch.hub's cache), a file name such as "
                 "deeplabv3_resnet101_coco-586e9e4e.pth, or a path",
                 PETSEG_P(train.spec.model.weights)),
      value("--backbone-weights", kModelBuilders,
                 "ImageNet weights for the backbone only: imagenet, a file name such as "
                 "resnet101-63fe2227.pth or mobilenet_v3_large-8738ca79.pth, or a path",
                 PETSEG_P(train.spec.model.backbone_weights)),
      flag("--freeze-backbone", kTrain, "Keep the backbone fixed", PETSEG_P(train.spec.model.freeze_backbone)),
      value("--mirror", kModelBuilders | kDownload,
            "Base URL of a server with the official file names (weights: default $PETSEG_WEIGHTS_MIRROR, else "
            "download.pytorch.org; data download: the archives and an MD5SUMS file)",
            PETSEG_P(mirror)),
      value("--lr", kTrain, "Base learning rate (poly decay, power 0.9, per step)", PETSEG_P(train.spec.lr)),
      value("--optimizer", kTrain, "sgd or adam", PETSEG_P(train.spec.optimizer), &train::kOptimizerChoices),
      value("--momentum", kTrain, "SGD momentum", PETSEG_P(train.spec.momentum)),
      value("--weight-decay,--wd", kTrain, "L2 weight decay (torchvision's --wd)",
                 PETSEG_P(train.spec.weight_decay)),
      value("--warmup-iters", kTrain, "Linear warm-up steps", PETSEG_P(train.spec.warmup_iters)),
      value("--aux-weight", kTrain, "Weight of the aux head's loss", PETSEG_P(train.spec.aux_weight)),
      value("--aux-lr-mult", kTrain, "The aux head's learning rate over --lr (torchvision's reference: 10)",
                 PETSEG_P(train.spec.aux_lr_mult)),
      value("--loss", kTrain,
            "Training loss (the aux head's too): ce (cross-entropy), dice or focal (segmentation_models_pytorch's), "
            "ce+dice (their sum, 1:1)",
            PETSEG_P(train.spec.loss), &train::kLossChoices),
      value("--class-weights", kTrain,
            "Class weights of the cross-entropy term: none, auto (median frequency over the training split, from the "
            "pixel counts petseg prepare records) or w1,w2,... (one per class)",
            PETSEG_P(train.spec.class_weights)),
      value("--amp", kTrain, "Autocast: off, bf16, or fp16 (with dynamic loss scaling)", PETSEG_P(train.spec.amp),
                 &train::kAmpChoices),
      flag("--sync-bn", kTrain, "BatchNorm statistics over all ranks (SyncBatchNorm)",
                PETSEG_P(train.spec.sync_bn)),
  };
}

// Where and how a run runs: none of it is part of what the run is.
std::vector<OptionDecl> exec_options() {
  return {
      value("--runs-dir", kTrain, "Where run folders go", PETSEG_P(train.exec.runs_dir)),
      value("--name", kTrain, "Run name (default: a timestamp)", PETSEG_P(train.exec.name)),
      value("--resume", kTrain,
            "Continue the run in this folder where it stopped, with this command line's execution options; auto: "
            "continue --name if it holds a checkpoint, else start it (for jobs torchrun restarts)",
            PETSEG_P(resume)),
      value("--device", kTrain | kEval | kPredict | kBenchModel | kBenchLadder, "auto (CUDA where a GPU is), cpu or cuda",
            PETSEG_P(train.exec.device), &kDeviceChoices),
      flag("--channels-last", kTrain, "NHWC memory layout (eval, predict: --memory-format)",
           PETSEG_P(train.exec.channels_last)),
      flag("--torch-script", kTrain | kEval | kPredict,
           "Run the model through TorchScript (eval, predict: traced and frozen; on the CPU in fp32 also optimized)",
           PETSEG_P(train.exec.torch_script)),
      flag("!--no-cudnn-benchmark", kTrain | kBenchModel | kBenchLadder,
           "CUDA: keep cuDNN's default algorithms instead of timing them once per input shape",
           PETSEG_P(train.exec.cudnn_benchmark)),
      flag("!--no-checkpoints", kTrain, "Write no last.pt / best.pt (benchmarks, smoke tests; such a run cannot resume)",
           PETSEG_P(train.exec.checkpoints)),
      flag("--data-parallel", kTrain, "Split each batch over all visible GPUs in one process (torch.nn.DataParallel)",
           PETSEG_P(train.exec.data_parallel)),
      flag("--distributed,--ddp", kTrain,
           "One process per rank (torchrun environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)",
           PETSEG_P(train.exec.distributed)),
      value("--nproc-per-node", kTrain, "Start N local ranks (implies --distributed)", PETSEG_P(nproc_per_node)),
      value("--backend", kTrain, "Distributed backend: auto (gloo on CPU, nccl on GPU), gloo, nccl",
            PETSEG_P(train.exec.backend), &distributed::kBackendChoices),
      value("--dist-timeout", kTrain, "Seconds before a silent rank ends the run with an error",
            PETSEG_P(train.exec.dist_timeout)),
      value("--log-interval", kTrain, "Steps between loss read-backs", PETSEG_P(train.exec.log_interval)),
      value("--profile", kTrain, "Record N steps with the autograd profiler (trace.json)",
            PETSEG_P(train.exec.profile)),
      value("--vis-samples", kTrain, "Validation samples in each epoch's prediction grid",
            PETSEG_P(train.exec.vis_samples)),
      value("--stop-after", kTrain, "Stop as on Ctrl-C after N steps in total (checkpoint, exit 130)",
            PETSEG_P(train.exec.stop_after)),
      value("--tensorboard-dir,--tensorboard", kTrain, "TensorBoard event folder (default: the run folder's tb/)",
            PETSEG_P(train.exec.tensorboard_dir)),
      flag("!--no-tensorboard", kTrain, "Write no TensorBoard event files", PETSEG_P(train.exec.tensorboard)),
  };
}

// The files of eval, predict, export, synth, prepare and data download.
std::vector<OptionDecl> file_options() {
  return {
      required_in(value("--checkpoint", kEval | kPredict | kExport,
                        "runs/<name>/best.pt or last.pt (export: that run's model, classes and image size, instead "
                        "of --model and --weights)",
                        PETSEG_P(checkpoint)),
                  kEval | kPredict),
      paths("--input", kPredict, "Images or folders of images (as the positional arguments)", PETSEG_P(input)),
      paths("images", kPredict, "Images or folders of images to predict", PETSEG_P(images)),
      required_in(value("--out", kPredict | kExport | kSynth | kDownload,
                        "Output: a folder (predict, synth: new or empty, data download), a file (export)",
                        PETSEG_P(out)),
                  kPredict | kExport | kSynth | kDownload),
      value("--format", kExport, "torchscript (torch.jit.load), state-dict (torch.load) or onnx (onnxruntime)",
            PETSEG_P(format), &train::kExportFormats),
      flag("--optimize", kExport, "Freeze for inference (TorchScript)", PETSEG_P(optimize)),
      flag("--force", kExport, "Overwrite an existing --out file", PETSEG_P(force)),
      value("--opset", kExport, "ONNX opset (13 up to the newest this build's ONNX library writes)", PETSEG_P(opset)),
      value("--static", kExport, "ONNX: a fixed input size N,H,W instead of dynamic N, H and W",
            PETSEG_P(static_shape)),
      flag("--aux", kExport,
           "ONNX: also output the aux head's logits as \"aux\" (a model built here gets the head, as --aux-loss)",
           PETSEG_P(aux)),
      flag("--fp16", kExport, "ONNX: float16 weights and arithmetic; the input and outputs stay float32",
           PETSEG_P(fp16)),
      value("--count", kSynth, "Samples named in the split files", PETSEG_P(synth.count)),
      value("--min-side", kSynth, "Smallest image side in pixels", PETSEG_P(synth.min_side)),
      value("--max-side", kSynth, "Largest image side in pixels", PETSEG_P(synth.max_side)),
      flag("--junk", kSynth, "Also plant every kind of broken file the real data set has", PETSEG_P(synth.junk)),
      flag("--split-files", kSynth, "folders: write train.txt and val.txt (else the split is drawn on load)",
           PETSEG_P(synth.split_files)),
      flag("!--no-classes-file", kSynth, "folders: no classes.txt (the classes are counted from the masks)",
           PETSEG_P(synth.classes_file)),
      flag("--rgb-masks", kSynth, "folders: masks drawn in RGB colours, with class_colors.txt",
           PETSEG_P(synth.rgb_masks)),
      flag("--quarantine", kPrepare, "MOVE rejected files into DATA/quarantine/", PETSEG_P(quarantine)),
      flag("--restore", kPrepare, "Move quarantined files back where they were", PETSEG_P(restore)),
      flag("--no-prepare", kDownload, "Do not run petseg prepare afterwards", PETSEG_P(no_prepare)),
  };
}

// How eval and predict run the model on an image: its size, whole or windows, augmentations, precision, layout.
std::vector<OptionDecl> inference_options() {
  constexpr uint32_t kInfer = kEval | kPredict;
  return {
      value("--resize", kInfer,
            "The model's input: square (--image-size x --image-size), shorter (shorter side to --image-size, aspect "
            "kept: torchvision's evaluation preset), none (the image's own size); auto: square, none with --mode slide",
            PETSEG_P(inference.resize), &train::kResizeChoices),
      value("--mode", kInfer,
            "whole (the whole input at once) or slide (overlapping --tile windows, --stride apart, logits averaged "
            "where they overlap: mmsegmentation's slide inference)",
            PETSEG_P(inference.mode), &train::kWindowModeChoices),
      value("--tile", kInfer, "The windows' side in pixels (with --mode slide)", PETSEG_P(inference.tile)),
      value("--stride", kInfer, "Pixels between windows, at most --tile (with --mode slide; 0: two thirds of --tile)",
            PETSEG_P(inference.stride)),
      value("--tta", kInfer,
            "Test-time augmentation: flip and/or scales, e.g. flip,0.75,1.0,1.25 (softmax averaged over them)",
            PETSEG_P(inference.tta)),
      value("--precision", kInfer,
            "Weights and activations: fp32, bf16, or auto (bf16 for a run trained under --amp bf16 or fp16)",
            PETSEG_P(inference.precision), &train::kPrecisionChoices),
      value("--memory-format", kInfer,
            "contiguous, channels-last, or auto (both timed on the first input of each size, the faster kept)",
            PETSEG_P(inference.memory_format), &model::kMemoryFormatChoices),
      flag("--native-resolution", kEval, "Score at each mask's own size (the logits upsampled to it)",
           PETSEG_P(native_resolution)),
  };
}

std::vector<OptionDecl> bench_options() {
  return {
      value("--worker-counts", kBenchData, "Worker counts to measure", PETSEG_P(worker_counts)),
      value("--repeats", kBenches,
            "Measurements per row or rung, the median reported (bench model: -1 is 3 on the CPU, 10 on CUDA)",
            PETSEG_P(repeats)),
      value("--cases", kBenchModel, "KIND:BATCH:SIZE list, e.g. train:8:520,infer:8:520 (default: per device)",
            PETSEG_P(cases)),
      value("--variants", kBenchModel,
            "[torchscript_|compile_[freeze_]|folded_|fused_|ort_][cl_](fp32|tf32|bf16|fp16|bf16w|fp16w) list, e.g. "
            "fp32,cl_bf16,fused_cl_bf16w,compile_freeze_cl_bf16,ort (bf16: autocast; bf16w: bf16 weights; folded: "
            "petseg's BatchNorm-folded model; fused: also its activations and sums fused into the convolutions (CPU); "
            "freeze: Inductor's freezing; ort: ONNX Runtime on petseg's export; "
            "default: per device)",
            PETSEG_P(variants)),
      value("--warmup", kBenchModel, "Untimed steps first (-1: 1 on the CPU, 5 on CUDA)", PETSEG_P(warmup)),
      value("--optimizer-impl", kBenchModel,
            "petseg's train-step SGD: fused, loop (libtorch's per-parameter SGD) or both, e.g. fused,loop",
            PETSEG_P(optimizer_impls)),
      value("--compile-timeout", kBenchModel,
            "Seconds each torch.compile variant's Python process may take (compilation included)",
            PETSEG_P(compile_timeout)),
      value("--ceilings", kBenchModel,
            "JSON of measured ceilings (matmul_bf16_tflops, copy_gbps; scripts/gpu_ceilings.py): MFU against them too",
            PETSEG_P(ceilings)),
      value("--rungs", kBenchLadder,
            "Rungs in order, steps of one rung joined by +, e.g. baseline,workers+pin,torchscript,cl+bf16 (default: "
            "baseline,workers,pin,torchscript,dp,ddp,cl,bf16,compile)",
            PETSEG_P(rungs)),
      value("--steps", kBenchLadder, "Steps per epoch and process", PETSEG_P(steps)),
      value("--ranks", kBenchLadder, "Processes of the DDP rung (CUDA: at most the GPUs)", PETSEG_P(ranks)),
      value("--work-dir", kBenchLadder, "Keep the runs and their logs here", PETSEG_P(work_dir)),
      flag("--no-compile", kBenchModel | kBenchLadder, "Skip Python's torch.compile variants", PETSEG_P(no_compile)),
      flag("--no-python", kBenches, "Skip the Python reference", PETSEG_P(no_python)),
      value("--python", kBenches, "Python interpreter of the reference (default: the pinned environment)",
            PETSEG_P(python)),
      value("--json", kBenches | kEval,
            "Also write the results as JSON (eval: miou, per class iou, dice, precision, recall, and the "
            "confusion_matrix)",
            PETSEG_P(json)),
      value("--svg", kBenchLadder, "Also write a bar chart (SVG)", PETSEG_P(svg)),
  };
}

#undef PETSEG_P

}  // namespace

std::string command_name(Cmd cmd) {
  switch (cmd) {
    case kSynth: return "synth";
    case kPrepare: return "prepare";
    case kLoader: return "loader";
    case kDownload: return "data download";
    case kTrain: return "train";
    case kEval: return "eval";
    case kPredict: return "predict";
    case kExport: return "export";
    case kBenchData: return "bench data";
    case kBenchModel: return "bench model";
    case kBenchLadder: return "bench ladder";
  }
  return "?";
}

std::vector<Cmd> all_commands() {
  return {kSynth,   kPrepare, kLoader,    kDownload,   kTrain,      kEval,
          kPredict, kExport,  kBenchData, kBenchModel, kBenchLadder};
}

Params defaults_for(Cmd cmd) {
  Params p;
  train::RunSpec& s = p.train.spec;
  train::ExecOptions& e = p.train.exec;
  switch (cmd) {
    // The loader's own commands pin only when asked (and say so where no GPU is); training pins for a GPU.
    case kLoader: s.epochs = 1, e.loader.pin_memory = false; break;
    case kBenchData: s.batch_size = 16, s.epochs = 2, e.loader.pin_memory = false; break;
    case kExport: s.image_size = 520, s.model.num_classes = 3; break;
    case kEval:
    case kPredict: s.image_size = 0; break;  // the checkpoint's
    case kBenchModel: e.device = "cpu", p.repeats = -1; break;
    case kBenchLadder:  // small runs on the CPU; the original's best worker count
      e.device = "cpu", s.image_size = 128, s.batch_size = 4, s.epochs = 2, e.loader.num_workers = 8, p.repeats = 1;
      break;
    default: break;
  }
  return p;
}

const std::vector<OptionDecl>& option_table() {
  static const std::vector<OptionDecl> table = [] {
    std::vector<OptionDecl> all;
    for (auto&& group :
         {data_options(), model_options(), exec_options(), file_options(), inference_options(), bench_options()}) {
      all.insert(all.end(), group.begin(), group.end());
    }
    return all;
  }();
  return table;
}

std::string all_spellings(const std::string& names) {
  std::string out;
  for (const std::string& name : CLI::detail::split(names, ',')) {
    out += (out.empty() ? "" : ",") + name;
    const size_t dashes = name.find("--");
    std::string snake = name;
    for (size_t i = dashes + 2; i < snake.size(); ++i) {
      if (snake[i] == '-') snake[i] = '_';
    }
    if (snake != name) out += "," + snake;
  }
  return out;
}

void add_options(CLI::App* app, Cmd cmd, Params& params) {
  for (const OptionDecl& d : option_table()) {
    if (!(d.commands & cmd)) continue;
    CLI::Option* o = d.bind(app, all_spellings(d.names), d.help, params);
    if (d.required & cmd) o->required();
  }
}

std::string spec_key_of(const OptionDecl& d) {
  std::string key = first_name(d.names);
  if (key.rfind("--", 0) != 0) return "";  // a negated flag ("!--no-x") is no run-spec field of its own
  key = key.substr(2);
  std::replace(key.begin(), key.end(), '-', '_');
  static const std::vector<std::string> keys = train::spec_keys();
  return std::count(keys.begin(), keys.end(), key) ? key : "";
}

std::set<std::string> given_spec_keys(const CLI::App* app, Cmd cmd) {
  std::set<std::string> keys;
  for (const OptionDecl& d : option_table()) {
    const std::string key = spec_key_of(d);
    if (key.empty() || !(d.commands & cmd)) continue;
    if (app->get_option(first_name(d.names))->count() > 0) keys.insert(key);
  }
  if (keys.count("model")) keys.insert("backbone");  // --model names the backbone too
  return keys;
}

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

}  // namespace petseg::cli
