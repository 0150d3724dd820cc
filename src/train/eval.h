// Evaluation: IoU, mIoU and pixel accuracy of a model on the validation split (the epoch's evaluate, summed across
// ranks) and of a checkpoint (`petseg eval`), as torchvision's references/segmentation evaluate does.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <filesystem>

#include "metrics/confusion.h"
#include "train/config.h"
#include "train/inference.h"
#include "train/step.h"

namespace petseg::distributed {
class Communicator;
}
namespace petseg::data {
class DataLoader;
class SegmentationDataset;
}

namespace petseg::train {

class Runner;

struct EvalResult {
  metrics::SegmentationScores scores;
  at::Tensor vis_images, vis_targets, vis_preds;  // the first `vis_samples` samples, on the host
  double seconds = 0;
  int64_t images = 0;
};

// One pass over `loader` (at most max_batches, 0: all) under `precision`'s autocast and layout; the confusion matrix
// stays on `device` and is summed over the ranks of `comm`.
EvalResult evaluate(Runner& runner, data::DataLoader& loader, const at::Device& device, const StepPrecision& precision,
                    int64_t num_classes, int64_t max_batches, int vis_samples, distributed::Communicator& comm);

struct EvalSummary {
  metrics::SegmentationScores scores;
  double seconds = 0;
  int64_t images = 0;
};
struct EvalOptions {
  std::filesystem::path checkpoint;
  std::filesystem::path data;  // empty: the data set the run validated on
  std::string device = "auto";
  data::WorkerOptions loader;
  bool torch_script = false;
  InferenceRequest inference;      // resize, whole or slide, TTA, precision, memory format
  bool native_resolution = false;  // score at each mask's own size, the logits upsampled to it
  std::filesystem::path json;      // also write the scores there (metrics::scores_json)
};
// Evaluates a checkpoint on the validation split through model::InferenceModel: --resize square (the default) in the
// run's batches as the epochs' validation did; any other size, slide or TTA one image at a time (mixed shapes are not
// padded into one batch: ASPP's and LR-ASPP's global pooling would average the padding in). Logs IoU, Dice, precision
// and recall per class.
EvalSummary run_eval(const EvalOptions& options);

// The names of the classes a model trained as `spec` says predicts on `dataset`: the pets' trimaps give pet,
// background (and border with --border 3class), other layouts their own classes. An error when spec.model.num_classes
// (--num-classes, or a checkpoint's) is set and differs.
std::vector<std::string> model_classes(const data::SegmentationDataset& dataset, const RunSpec& spec);

}  // namespace petseg::train
