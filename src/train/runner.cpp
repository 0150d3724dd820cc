// Runner and DataParallel.
#include "train/runner.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_copy.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>

#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "core/check.h"
#include "model/torchscript.h"

namespace petseg::train {
namespace {

// Tensors laid end to end in one 1-D buffer, each in its own memory order: a channels_last weight is not made
// contiguous first, so flattening is one cat kernel, not one copy per tensor.
struct Flat {
  at::Tensor buffer;
  std::vector<at::Tensor> parts;  // the tensors as laid out in `buffer` (dense), for their sizes and strides
};

Flat flatten(const std::vector<at::Tensor>& tensors) {
  Flat flat;
  std::vector<at::Tensor> pieces;
  for (const at::Tensor& t : tensors) {
    flat.parts.push_back(t.is_non_overlapping_and_dense() ? t : t.contiguous());
    pieces.push_back(flat.parts.back().as_strided({t.numel()}, {1}));  // a dense tensor's memory, in order
  }
  flat.buffer = at::cat(pieces);
  return flat;
}

// Views of `buffer` (flat.buffer or a copy of it on another device) with the sizes and strides of flat's tensors.
std::vector<at::Tensor> unflatten(const at::Tensor& buffer, const Flat& flat) {
  std::vector<at::Tensor> views;
  int64_t offset = buffer.storage_offset();
  for (const at::Tensor& t : flat.parts) {
    views.push_back(buffer.as_strided(t.sizes(), t.strides(), offset));
    offset += t.numel();
  }
  return views;
}

// Positions in `tensors` grouped by dtype (a flat buffer holds one dtype), skipping undefined tensors.
std::map<at::ScalarType, std::vector<size_t>> by_dtype(const std::vector<at::Tensor>& tensors) {
  std::map<at::ScalarType, std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].defined()) groups[tensors[i].scalar_type()].push_back(i);
  }
  return groups;
}

std::vector<at::Tensor> select(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& positions) {
  std::vector<at::Tensor> out;
  out.reserve(positions.size());
  for (size_t i : positions) out.push_back(tensors[i]);
  return out;
}

std::vector<at::Tensor> parameters_and_buffers(model::SegmentationModel& m) {
  std::vector<at::Tensor> all = m->parameters();
  for (const at::Tensor& b : m->buffers()) all.push_back(b);
  return all;
}

}  // namespace

model::SegmentationOutput Runner::forward(const at::Tensor& x) {
  if (!script_) return model_->forward(x);
  std::optional<torch::jit::Module>& traced = model_->is_training() ? train_ : eval_;
  if (!traced) traced = model::trace_model(*model_, x);
  return model::run_scripted(*traced, x);
}

std::vector<at::Device> data_parallel_devices() {
  const int64_t n = torch::cuda::device_count();
  std::vector<at::Device> devices;
  if (n < 2) return devices;
  for (int64_t i = 0; i < n; ++i) devices.emplace_back(at::kCUDA, static_cast<c10::DeviceIndex>(i));
  return devices;
}

DataParallel::DataParallel(model::SegmentationModel primary, const model::ModelConfig& config, std::vector<at::Device> devices,
                           bool torch_script, bool channels_last)
    : devices_(std::move(devices)) {
  PETSEG_CHECK(!devices_.empty(), "DataParallel needs at least one device");
  runners_.emplace_back(primary, torch_script);
  for (size_t i = 1; i < devices_.size(); ++i) {
    // The primary's values are copied in before every step.
    model::SegmentationModel replica = model::build_segmentation_architecture(config);
    replica->freeze_backbone(primary->backbone_frozen());
    replica->to(devices_[i]);
    if (channels_last) model::convert_to_channels_last(*replica);
    PETSEG_CHECK(replica->parameters().size() == primary->parameters().size(),
                 "DataParallel: a replica has a different structure from the model");
    runners_.emplace_back(replica, torch_script);
  }
}

// Coalesced as comm.broadcast_coalesced: per dtype, the primary's parameters and buffers flattened into one buffer,
// one copy of it to each replica's device, and one foreach copy from its views into the replica's tensors.
void DataParallel::broadcast_to_replicas() {
  if (runners_.size() < 2) return;
  torch::NoGradGuard no_grad;
  auto& primary = runners_.front().model();
  const std::vector<at::Tensor> source = parameters_and_buffers(primary);
  std::vector<std::vector<at::Tensor>> targets(runners_.size());
  for (size_t r = 1; r < runners_.size(); ++r) {
    runners_[r].model()->train(primary->is_training());
    targets[r] = parameters_and_buffers(runners_[r].model());
    PETSEG_CHECK(targets[r].size() == source.size(), "DataParallel: replica ", r, " has ", targets[r].size(),
                 " parameters and buffers, the model ", source.size());
  }
  for (const auto& [dtype, positions] : by_dtype(source)) {
    const Flat flat = flatten(select(source, positions));
    for (size_t r = 1; r < runners_.size(); ++r) {
      const at::Tensor copy = flat.buffer.to(devices_[r], /*non_blocking=*/true);
      at::_foreach_copy_(select(targets[r], positions), unflatten(copy, flat), /*non_blocking=*/true);
    }
  }
}

std::vector<model::SegmentationOutput> DataParallel::forward_chunks(const std::vector<at::Tensor>& chunks,
                                                                    const StepPrecision& precision) {
  const size_t used = chunks.size();
  std::vector<model::SegmentationOutput> outputs(used);
  std::vector<std::exception_ptr> errors(used);
  auto run = [&](size_t r) {
    try {
      c10::DeviceGuard guard(devices_[r]);
      outputs[r] = autocast_forward(runners_[r], chunks[r].to(devices_[r], /*non_blocking=*/true), precision);
    } catch (...) {
      errors[r] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (size_t r = 1; r < used; ++r) threads.emplace_back(run, r);
  run(0);
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return outputs;
}

// ReduceAdd, coalesced as comm.reduce_add_coalesced: per replica and dtype, its gradients flattened on its device, one
// copy to the primary's device, one foreach add into the primary's. A parameter a replica left without a gradient
// adds nothing (as the zeros Python's autograd would have materialised).
void DataParallel::sum_replica_gradients(size_t used) {
  torch::NoGradGuard no_grad;
  auto params = runners_.front().model()->parameters();
  for (size_t r = 1; r < used; ++r) {
    std::vector<at::Tensor> grads;
    for (const at::Tensor& p : runners_[r].model()->parameters()) grads.push_back(p.grad());
    for (const auto& [dtype, positions] : by_dtype(grads)) {
      std::vector<at::Tensor> into;
      for (size_t i : positions) {
        if (!params[i].grad().defined()) params[i].mutable_grad() = at::zeros_like(params[i]);
        into.push_back(params[i].grad());
      }
      const Flat flat = flatten(select(grads, positions));
      at::_foreach_add_(into, unflatten(flat.buffer.to(params[positions[0]].device(), /*non_blocking=*/true), flat));
    }
  }
}

at::Tensor DataParallel::forward_backward(const at::Tensor& images, const at::Tensor& target, const Loss& loss,
                                          double aux_weight, const StepPrecision& precision) {
  const auto chunks = images.chunk(int64_t(runners_.size()), 0);
  const size_t used = chunks.size();  // a batch smaller than the device count uses fewer replicas, as Scatter does
  broadcast_to_replicas();
  for (size_t r = 1; r < used; ++r) {
    for (auto& p : runners_[r].model()->parameters()) p.mutable_grad() = at::Tensor();
  }
  const std::vector<model::SegmentationOutput> outputs = forward_chunks(chunks, precision);
  // Gather onto the primary's device; the copies' backward sends each chunk's gradient back to its replica.
  const at::Device home = devices_.front();
  std::vector<at::Tensor> out, aux;
  for (const model::SegmentationOutput& y : outputs) {
    out.push_back(y.out.to(home, /*non_blocking=*/true));
    if (y.aux.defined()) aux.push_back(y.aux.to(home, /*non_blocking=*/true));
  }
  model::SegmentationOutput gathered;
  gathered.out = at::cat(out);
  if (!aux.empty()) gathered.aux = at::cat(aux);
  const at::Tensor value = segmentation_loss(loss, gathered, target.to(home, /*non_blocking=*/true), aux_weight);
  scaled_backward(value, precision);  // autograd runs each replica's part on its device
  sum_replica_gradients(used);
  return value.detach();
}

}  // namespace petseg::train
