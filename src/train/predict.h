// `petseg predict`: masks for images the model has never seen, at each image's own size.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "train/inference.h"

namespace petseg::train {

struct PredictOptions {
  std::filesystem::path checkpoint;
  std::vector<std::filesystem::path> inputs;  // images and folders of images (their .jpg and .png files)
  std::filesystem::path out;
  bool torch_script = false;     // traced and frozen (model/inference_model.h)
  std::string device = "auto";   // auto | cpu | cuda
  InferenceRequest inference{};  // resize, whole or slide, TTA, precision, memory format
};

struct PredictSummary {
  int written = 0;
  int skipped = 0;  // unreadable images, reported and skipped
};

// Writes <out>/<stem>_mask.png (the run's stored values: the pets' trimap 1 pet, 2 background, 3 border; other
// layouts class indices) and <out>/<stem>_overlay.png, each at the input's own size, whatever size the model saw.
PredictSummary run_predict(const PredictOptions& options);

}  // namespace petseg::train
