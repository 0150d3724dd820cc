// Models for the folding and export tests: a registered model with random weights drawn as
// tests/python/deeplab_reference.py draws them (BatchNorm affine parameters and running statistics away from the
// identity, convolution biases non-zero), so a wrong fold, a dropped bias or a mixed-up statistic cannot hide.
#pragma once

#include <ATen/ops/rand.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/modules/conv.h>

#include <string>

#include "model/batchnorm.h"
#include "model/factory.h"

namespace petseg::testing {

inline void uniform_(at::Tensor t, double lo, double hi) { t.copy_(at::rand(t.sizes()) * (hi - lo) + lo); }

inline void randomize_statistics(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* bn = m->as<model::BatchNorm2dImpl>()) {
      uniform_(bn->running_mean, -0.2, 0.2);
      uniform_(bn->running_var, 0.5, 1.5);
      uniform_(bn->weight, 0.5, 1.5);
      uniform_(bn->bias, -0.2, 0.2);
    } else if (auto* c = m->as<torch::nn::Conv2dImpl>()) {
      if (c->bias.defined()) uniform_(c->bias, -0.2, 0.2);
    }
  }
}

// `name` with 21 classes and, where the model has one, the aux head; random as above, in eval mode.
inline model::SegmentationModel random_model(const std::string& name, uint64_t seed = 0) {
  at::manual_seed(seed);
  model::ModelConfig config;
  model::set_model_name(config, name);
  config.num_classes = 21;
  config.aux_loss = !model::find_model(name).aux_prefix.empty();
  model::SegmentationModel m = model::build_segmentation_architecture(config);
  randomize_statistics(*m);
  m->eval();
  return m;
}

}  // namespace petseg::testing
