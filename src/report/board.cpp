// RunBoard: petseg's tags in TensorBoard.
#include "report/board.h"

#include <cmath>

#include "report/tensorboard.h"

namespace petseg::report {

RunBoard::RunBoard(const std::filesystem::path& dir, int64_t first_step, const std::string& config_json)
    : writer_(std::make_unique<tensorboard::EventWriter>(dir)) {
  writer_->start_session(first_step);
  writer_->add_text("config", "```json\n" + config_json + "\n```", first_step);
  writer_->flush();
}

RunBoard::~RunBoard() = default;

std::filesystem::path RunBoard::file() const { return writer_->path(); }

void RunBoard::log_step(int64_t step, double loss, double lr, double images_per_s, double loss_scale) {
  writer_->add_scalar("train/loss", loss, step);
  writer_->add_scalar("train/lr", lr, step);
  writer_->add_scalar("train/images_per_s", images_per_s, step);
  if (loss_scale > 0) writer_->add_scalar("train/loss_scale", loss_scale, step);
  writer_->flush();  // TensorBoard reads the file while it grows
}

void RunBoard::log_epoch(int64_t step, const EpochRecord& r, const image::Image* grid) {
  writer_->add_scalar("epoch/train_loss", r.train_loss, step);
  writer_->add_scalar("epoch/miou", r.miou, step);
  writer_->add_scalar("epoch/pixel_accuracy", r.pixel_accuracy, step);
  writer_->add_scalar("epoch/images_per_s", r.images_per_s, step);
  // One tag per metric and class, under the names metrics.jsonl gives them; an undefined value (a class neither in
  // the targets nor predicted) is left out, not drawn as 0.
  const std::pair<const char*, const std::vector<double>*> per_class[] = {
      {"iou", &r.iou}, {"dice", &r.dice}, {"precision", &r.precision}, {"recall", &r.recall}};
  for (const auto& [metric, values] : per_class) {
    for (size_t c = 0; c < values->size() && c < r.class_names.size(); ++c) {
      const double v = (*values)[c];
      if (std::isfinite(v)) writer_->add_scalar(std::string("epoch/") + metric + "/" + r.class_names[c], v, step);
    }
  }
  const PhaseTimes& t = r.times;
  const std::pair<const char*, double> phases[] = {{"data", t.data},         {"h2d", t.h2d},
                                                   {"forward", t.forward},   {"backward", t.backward},
                                                   {"optimizer", t.optimizer}, {"eval", t.eval}};
  for (const auto& [name, seconds] : phases) writer_->add_scalar(std::string("epoch/seconds/") + name, seconds, step);
  if (r.seconds > 0) writer_->add_scalar("epoch/data_wait_share", t.data / r.seconds, step);
  if (grid) writer_->add_image("val/predictions", *grid, step);
  writer_->flush();
}

}  // namespace petseg::report
