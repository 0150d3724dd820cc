// The training schedule as torchvision's reference trains: the learning rate per step, and the parameter groups
// (the aux head at its own rate).
#pragma once

#include <cstdint>
#include <vector>

#include "model/segmentation.h"
#include "train/config.h"
#include "train/optimizer.h"

namespace petseg::train {

// torchvision's reference schedule: optional linear warm-up, then polynomial decay (power 0.9) per step.
double learning_rate(const RunSpec& spec, int64_t step, int64_t total_steps);
// torchvision's params_to_optimize: backbone and classifier at lr, the aux classifier at lr * spec.aux_lr_mult; a
// frozen backbone's parameters are left out. In the model's parameter order (the aux head is registered last).
std::vector<ParamGroup> param_groups_of(model::SegmentationModel& model, const RunSpec& spec);

}  // namespace petseg::train
