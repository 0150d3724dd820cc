// InferenceModel: the model prepared once for inference, and the memory format chosen by timing both.
#include "model/inference_model.h"

#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/cuda.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <sstream>

#include "core/check.h"
#include "core/log.h"
#include "model/batchnorm.h"
#include "model/eager_ops.h"
#include "model/fold.h"
#include "model/fused_program.h"
#include "model/torchscript.h"

namespace petseg::model {
namespace {

// Floating tensors to `dtype` on `device`; integer buffers (num_batches_tracked) keep their type.
void move_and_cast(torch::nn::Module& module, const c10::Device& device, at::ScalarType dtype) {
  for (auto& p : module.parameters()) p.set_data(p.to(device, dtype));
  for (auto& b : module.buffers()) {
    b.set_data(at::isFloatingType(b.scalar_type()) ? b.to(device, dtype) : b.to(device));
  }
}

// torch::nn::ReLU modules of the Sequential heads run in place where their input is the fresh output of the layer
// before them (a convolution, or a BatchNorm, which passes a folded convolution's output on): nothing else reads it.
int make_sequential_relus_inplace(torch::nn::Module& module) {
  int changed = 0;
  for (const auto& m : module.modules()) {
    auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(m.get());
    if (!seq) continue;
    for (size_t i = 1; i < seq->size(); ++i) {
      auto* relu = seq->ptr(i)->as<torch::nn::ReLU>();
      const auto& before = seq->ptr(i - 1);
      if (relu && (before->as<torch::nn::Conv2d>() || before->as<BatchNorm2d>())) {
        relu->options.inplace(true);
        ++changed;
      }
    }
  }
  return changed;
}

double seconds_of(const std::function<void()>& fn, bool cuda) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

at::ScalarType inference_dtype(const std::string& precision, const std::string& option) {
  check_choice(option, precision, kInferencePrecisionChoices);
  return precision == "bf16" ? at::kBFloat16 : at::kFloat;
}

InferenceModel::InferenceModel(SegmentationModel model, const c10::Device& device, InferenceModelOptions options)
    : model_(std::move(model)), device_(device), options_(std::move(options)) {
  PETSEG_CHECK(options_.dtype == at::kFloat || options_.dtype == at::kBFloat16,
               "an inference model runs in fp32 or bf16, not ", c10::toString(options_.dtype));
  check_choice("--memory-format", options_.memory_format, kMemoryFormatChoices);
  torch::NoGradGuard no_grad;
  model_->eval();
  model_->skip_aux();
  // Folded in double from the checkpoint's fp32 values, then cast: bf16 rounds each folded weight once.
  if (options_.fold_batchnorm) folded_ = fold_batchnorm(*model_);
  move_and_cast(*model_, device_, options_.dtype);
  make_sequential_relus_inplace(*model_);
  if (!options_.torch_script && options_.fuse && device_.is_cpu()) program_ = std::make_unique<FusedProgram>(*model_);
  if (options_.memory_format == "channels-last") use_format(true);
}

InferenceModel::~InferenceModel() = default;
InferenceModel::InferenceModel(InferenceModel&&) noexcept = default;
InferenceModel& InferenceModel::operator=(InferenceModel&&) noexcept = default;

InferenceModel::SizeClass InferenceModel::size_class(const at::Tensor& x) {
  const double pixels = double(x.size(2)) * double(x.size(3));
  return {x.size(0), std::lround(2 * std::log2(std::max(pixels, 1.0)))};
}

void InferenceModel::use_format(bool channels_last) {
  if (channels_last == weights_channels_last_) return;
  // Outside InferenceMode: the weights stay normal tensors (the tracer and later modes can read them).
  c10::InferenceMode normal(/*enabled=*/false);
  torch::NoGradGuard no_grad;
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto& p : model_->parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(format));
  }
  weights_channels_last_ = channels_last;
}

at::Tensor InferenceModel::run(const at::Tensor& x, bool channels_last) {
  const at::Tensor input = x.contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  if (!options_.torch_script) {
    use_format(channels_last);
    if (program_) return program_->run(input);
    InplaceActivations inplace;
    return model_->forward(input).out;
  }
  auto it = scripts_.find(channels_last);
  if (it == scripts_.end()) {
    use_format(channels_last);
    c10::InferenceMode normal(/*enabled=*/false);
    torch::NoGradGuard no_grad;
    const at::Tensor example = at::zeros({1, 3, 64, 64}, at::TensorOptions(device_).dtype(options_.dtype));
    const torch::jit::Module traced = trace_model(*model_, example);
    const bool onednn = device_.is_cpu() && options_.dtype == at::kFloat;
    auto frozen =
        std::make_shared<torch::jit::Module>(onednn ? optimize_for_inference(traced) : freeze_for_inference(traced));
    it = scripts_.emplace(channels_last, std::move(frozen)).first;
  }
  return run_scripted(*it->second, input).out;
}

bool InferenceModel::channels_last_for(const at::Tensor& images) {
  if (options_.memory_format != "auto") return options_.memory_format == "channels-last";
  const auto it = channels_last_.find(size_class(images));
  if (it != channels_last_.end()) return it->second;
  c10::InferenceMode guard;
  decide_and_run(images.to(device_, options_.dtype));
  return channels_last_.at(size_class(images));
}

at::Tensor InferenceModel::decide_and_run(const at::Tensor& x) {
  const bool cuda = device_.is_cuda();
  // A first call in each format builds its kernels (oneDNN primitives, cuDNN plans): each is warmed before it is
  // timed. Then the two alternate twice and each keeps its best time, so one hiccup of a shared machine does not
  // decide.
  at::Tensor out = run(x, /*channels_last=*/false);
  run(x, true);
  double contiguous = 1e30, channels_last = 1e30;
  for (int round = 0; round < 2; ++round) {
    contiguous = std::min(contiguous, seconds_of([&] { run(x, false); }, cuda));
    channels_last = std::min(channels_last, seconds_of([&] { run(x, true); }, cuda));
  }
  const bool choose = channels_last < contiguous;
  channels_last_[size_class(x)] = choose;
  log_debug("inference: ", choose ? "channels_last" : "contiguous", " for inputs of ", x.size(0), "x", x.size(2), "x",
            x.size(3), " and their size class (", contiguous * 1e3, " ms contiguous, ", channels_last * 1e3,
            " ms channels_last)");
  return out;
}

at::Tensor InferenceModel::forward(const at::Tensor& images) {
  PETSEG_CHECK(images.dim() == 4 && images.size(1) == 3, "inference takes [N,3,H,W] images, got ", images.sizes());
  c10::InferenceMode guard;
  const at::Tensor x = images.to(device_, options_.dtype, /*non_blocking=*/images.is_pinned());
  at::Tensor logits;
  if (options_.memory_format == "auto" && !channels_last_.count(size_class(x))) {
    logits = decide_and_run(x);
  } else {
    logits = run(x, channels_last_for(x));
  }
  return logits.to(at::kFloat);
}

std::string InferenceModel::describe() const {
  std::ostringstream os;
  os << "BatchNorm folded into " << folded_ << " convolutions, " << (options_.dtype == at::kBFloat16 ? "bf16" : "fp32")
     << ", " << (options_.torch_script ? "TorchScript (frozen)" : "eager") << ", memory format "
     << (options_.memory_format == "auto" ? "timed per input size" : options_.memory_format);
  if (program_) os << "; " << program_->describe();
  return os.str();
}

}  // namespace petseg::model
