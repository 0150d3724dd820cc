// What a training step runs the model through: eager or TorchScript (Runner), and single-process DataParallel
// over several devices (torch.nn.DataParallel's semantics).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/csrc/jit/api/module.h>

#include <optional>
#include <vector>

#include "model/factory.h"
#include "train/step.h"

namespace petseg::train {

// Eager, or the same model through TorchScript (traced on first use per mode, sharing the parameters).
class Runner {
 public:
  Runner(model::SegmentationModel model, bool script) : model_(std::move(model)), script_(script) {}
  model::SegmentationModel& model() { return model_; }
  model::SegmentationOutput forward(const at::Tensor& x);

 private:
  model::SegmentationModel model_;
  bool script_;
  std::optional<torch::jit::Module> train_, eval_;
};

// torch.nn.DataParallel in one process: replica 0 IS the primary model (as Python's device[0] replica shares the
// module's storage, so its BatchNorm statistics are the ones kept); the other replicas live on the other
// devices and receive the primary's parameters and buffers before every step. Each step splits the batch along
// dim 0 (torch.chunk, as Scatter does), runs the forward of every chunk on its device in its own thread, gathers the
// outputs onto the primary's device (Gather: copies autograd differentiates), computes the loss there on the whole
// batch, runs one backward through every replica, and sums the replicas' gradients into the primary's. A loss over
// the whole batch is what weighted cross-entropy (its normalizer is the batch's sum of weights) and Dice (its sums
// run over the batch) need: the summed gradient equals the one-device gradient of the whole batch for every --loss.
// Both transfers of parameters and gradients are coalesced per dtype (one flat copy per replica and direction), as
// broadcast_coalesced and reduce_add_coalesced are.
class DataParallel {
 public:
  DataParallel(model::SegmentationModel primary, const model::ModelConfig& config, std::vector<at::Device> devices,
               bool torch_script, bool channels_last);
  size_t size() const { return runners_.size(); }
  const std::vector<at::Device>& devices() const { return devices_; }
  Runner& primary() { return runners_.front(); }
  Runner& replica(size_t i) { return runners_.at(i); }  // 0 is the primary
  // Gradients are accumulated into the primary's .grad (zero them before). Returns the detached, unscaled batch
  // loss on the primary's device.
  at::Tensor forward_backward(const at::Tensor& images, const at::Tensor& target, const Loss& loss, double aux_weight,
                              const StepPrecision& precision);

 private:
  void broadcast_to_replicas();
  // Each chunk's forward on its replica's device, in parallel; the outputs stay there, with their autograd graphs.
  std::vector<model::SegmentationOutput> forward_chunks(const std::vector<at::Tensor>& chunks,
                                                        const StepPrecision& precision);
  void sum_replica_gradients(size_t used);

  std::vector<at::Device> devices_;
  std::vector<Runner> runners_;
};

// The devices --data-parallel would use: every visible CUDA device (empty when there are fewer than two).
std::vector<at::Device> data_parallel_devices();

}  // namespace petseg::train
