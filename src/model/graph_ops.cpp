// The walk through containers that every graph backend shares, and the module paths its errors name.
#include "model/graph_ops.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>

#include "core/check.h"
#include "model/batchnorm.h"

namespace petseg::model {

namespace nn = torch::nn;

GraphOps::GraphOps(const nn::Module& root) {
  for (const auto& item : root.named_modules("", /*include_self=*/true)) paths_[item.value().get()] = item.key();
}

std::string GraphOps::path_of(const nn::Module& module) const {
  const auto it = paths_.find(&module);
  return it == paths_.end() ? "(not in the model)" : it->second;
}

GraphOps::Value GraphOps::adaptive_avg_pool(nn::AdaptiveAvgPool2dImpl& pool, const Value& x) {
  const auto& size = pool.options.output_size();
  for (const auto& s : *size) {
    PETSEG_CHECK(s.has_value() && *s == 1, "graph export: ", path_of(pool),
                 " is an AdaptiveAvgPool2d to another size than 1x1; only global average pooling is supported");
  }
  return global_avg_pool(x);
}

GraphOps::Value GraphOps::sequential(nn::SequentialImpl& seq, const Value& x) {
  Value h = x;
  for (const auto& child : seq.children()) h = layer(*child, h);
  return h;
}

GraphOps::Value GraphOps::layer(nn::Module& module, const Value& x) {
  if (auto* c = module.as<nn::Conv2dImpl>()) return conv(*c, x);
  if (auto* bn = module.as<BatchNorm2dImpl>()) return batch_norm(*bn, x);
  if (module.as<nn::ReLUImpl>()) return relu(x);
  if (module.as<nn::SigmoidImpl>()) return sigmoid(x);
  if (module.as<nn::DropoutImpl>()) return x;
  if (auto* pool = module.as<nn::AdaptiveAvgPool2dImpl>()) return adaptive_avg_pool(*pool, x);
  if (auto* seq = module.as<nn::SequentialImpl>()) return sequential(*seq, x);
  if (auto* emitter = dynamic_cast<GraphEmitter*>(&module)) return emitter->emit(*this, x);
  PETSEG_FAIL("graph export: no emitter for ", path_of(module), " (", module.name(),
              "); known layers: Conv2d, BatchNorm2d, ReLU, Sigmoid, Dropout, AdaptiveAvgPool2d(1), Sequential and "
              "petseg's model blocks");
}

}  // namespace petseg::model
