// `petseg predict`: masks for images the model has never seen, at each image's own size.
#pragma once

#include <filesystem>
#include <string>

namespace petseg::train {

struct PredictOptions {
  std::filesystem::path checkpoint;
  std::filesystem::path input;  // an image or a folder of images
  std::filesystem::path out;
  bool torch_script = false;  // frozen + optimized TorchScript for inference
  std::string device = "auto";  // auto | cpu | cuda
};

struct PredictSummary {
  int written = 0;
  int skipped = 0;  // unreadable images, reported and skipped
};

// Writes <out>/<stem>_mask.png (trimap values: 1 pet, 2 background, 3 border) and <out>/<stem>_overlay.png.
PredictSummary run_predict(const PredictOptions& options);

}  // namespace petseg::train
