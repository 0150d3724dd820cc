// A training run in TensorBoard: what rank 0 writes to the run's event folder (scalars at log intervals and per
// epoch, the validation grid, the configuration), so that `tensorboard --logdir runs/` shows petseg's runs side by
// side as it shows PyTorch's. Writing never stops training (tensorboard.h).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "report/epoch_record.h"

namespace petseg::image {
struct Image;
}
namespace petseg::tensorboard {
class EventWriter;
}

namespace petseg::report {

class RunBoard {
 public:
  // A new event file in `dir`; `first_step` is the first step this start trains (a resume's checkpoint step), from
  // which TensorBoard forgets what earlier starts wrote; `config_json` is shown once as text.
  RunBoard(const std::filesystem::path& dir, int64_t first_step, const std::string& config_json);
  ~RunBoard();
  // At a log step: the mean loss of the interval, the learning rate, images/s, and the loss scale (0: none).
  void log_step(int64_t step, double loss, double lr, double images_per_s, double loss_scale);
  // At the end of an epoch (`step`: the optimizer steps so far): what metrics.jsonl records, and the prediction grid.
  void log_epoch(int64_t step, const EpochRecord& record, const image::Image* grid);
  std::filesystem::path file() const;

 private:
  std::unique_ptr<tensorboard::EventWriter> writer_;
};

}  // namespace petseg::report
