// Optimizer helpers shared by training and the benchmarks.
#pragma once

#include <torch/optim/optimizer.h>

namespace petseg::train {

// Drops the gradients (set to undefined, as Python's zero_grad(set_to_none=True)), so backward writes fresh ones
// instead of adding to zeroed buffers. libtorch 1.13's zero_grad() only zeroes.
inline void zero_grad_to_none(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) p.mutable_grad() = at::Tensor();
  }
}

}  // namespace petseg::train
