// The learning-rate schedule and the parameter groups.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "model/registry.h"

namespace petseg::train {

double learning_rate(const RunSpec& c, int64_t step, int64_t total_steps) {
  if (step < c.warmup_iters) {
    const double start = 0.01;
    return c.lr * (start + (1.0 - start) * double(step) / c.warmup_iters);
  }
  const double span = std::max<int64_t>(1, total_steps - c.warmup_iters);
  const double progress = std::min(1.0, double(step - c.warmup_iters) / span);
  return c.lr * std::pow(1.0 - progress, 0.9);
}

std::vector<ParamGroup> param_groups_of(model::SegmentationModel& model, const RunSpec& spec) {
  const std::string aux = model::model_info(spec.model).aux_prefix;
  std::vector<ParamGroup> groups(2);
  groups[1].lr_mult = spec.aux_lr_mult;
  for (const auto& p : model->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    const bool in_aux = !aux.empty() && p.key().rfind(aux, 0) == 0;
    groups[in_aux ? 1 : 0].params.push_back(p.value());
  }
  return groups;
}

}  // namespace petseg::train
