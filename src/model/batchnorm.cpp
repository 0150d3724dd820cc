// SyncBatchNorm's arithmetic (torch/nn/modules/_functions.py): forward all-reduces [sum, sum of squares, count]
// per channel; backward all-reduces [sum dy, sum dy*(x-mean)] so grad_input sees the whole global batch, while
// grad_weight/grad_bias stay local (the gradient averaging over ranks finishes them, as in PyTorch).
#include "model/batchnorm.h"

#include <ATen/ops/batch_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "core/check.h"

namespace petseg::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor per_channel(const at::Tensor& t) { return t.view({1, -1, 1, 1}); }

struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                               const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var, double momentum,
                               double eps, const AllreduceSum* allreduce) {
    const at::Tensor x = input.to(at::kFloat);
    const int64_t channels = x.size(1);
    const double local_count = double(x.numel() / channels);
    // One collective: [sum (C), sum of squares (C), count (1)], in double so large batches stay exact enough.
    at::Tensor stats = at::cat({x.sum({0, 2, 3}).to(at::kDouble), (x * x).sum({0, 2, 3}).to(at::kDouble),
                                at::full({1}, local_count, x.options().dtype(at::kDouble))})
                           .contiguous();
    (*allreduce)(stats);
    // The global count stays on the device (no host sync per layer); only a rank holding a single value per
    // channel needs to know whether the others add any.
    const at::Tensor count = stats.narrow(0, 2 * channels, 1);
    if (local_count <= 1) {
      PETSEG_CHECK(count.item<double>() > 1, "SyncBatchNorm: a global batch of ", count.item<double>(),
                   " value(s) per channel cannot be normalised");
    }
    const at::Tensor mean = (stats.narrow(0, 0, channels) / count);
    const at::Tensor var = (stats.narrow(0, channels, channels) / count - mean * mean).clamp_min(0);
    if (running_mean.defined()) {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((var * count / (count - 1)).to(running_var.scalar_type()), momentum);
    }
    const at::Tensor mean_f = mean.to(at::kFloat), invstd = at::rsqrt(var + eps).to(at::kFloat);
    at::Tensor y = (x - per_channel(mean_f)) * per_channel(invstd);
    if (weight.defined()) y = y * per_channel(weight.to(at::kFloat)) + per_channel(bias.to(at::kFloat));
    ctx->save_for_backward({input, weight, mean_f, invstd, count.to(at::kFloat)});
    ctx->saved_data["allreduce"] = int64_t(reinterpret_cast<intptr_t>(allreduce));
    return {y.to(input.scalar_type())};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor x = saved[0].to(at::kFloat), weight = saved[1], mean = saved[2], invstd = saved[3];
    const at::Tensor count = saved[4];
    const auto* allreduce = reinterpret_cast<const AllreduceSum*>(intptr_t(ctx->saved_data["allreduce"].toInt()));
    const at::Tensor dy = grads[0].to(at::kFloat);
    const at::Tensor xmu = x - per_channel(mean);
    const at::Tensor sum_dy = dy.sum({0, 2, 3}), sum_dy_xmu = (dy * xmu).sum({0, 2, 3});
    const int64_t channels = x.size(1);
    at::Tensor packed = at::cat({sum_dy, sum_dy_xmu}).to(at::kDouble).contiguous();
    (*allreduce)(packed);
    packed = packed.to(at::kFloat);
    const at::Tensor mean_dy = packed.narrow(0, 0, channels) / count;
    const at::Tensor mean_dy_xmu = packed.narrow(0, channels, channels) / count;
    const at::Tensor scale = weight.defined() ? invstd * weight.to(at::kFloat) : invstd;
    const at::Tensor grad_input =
        (dy - per_channel(mean_dy) - xmu * per_channel(invstd * invstd * mean_dy_xmu)) * per_channel(scale);
    at::Tensor grad_weight, grad_bias;
    if (weight.defined()) {
      grad_weight = (sum_dy_xmu * invstd).to(weight.scalar_type());  // local: the gradient sync averages it
      grad_bias = sum_dy.to(weight.scalar_type());
    }
    return {grad_input.to(saved[0].scalar_type()),
            grad_weight,
            grad_bias,
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

BatchNorm2dImpl::BatchNorm2dImpl(int64_t num_features, double eps, double momentum)
    : num_features_(num_features), eps_(eps), momentum_(momentum) {
  reset();
}

void BatchNorm2dImpl::reset() {
  weight = register_parameter("weight", at::ones({num_features_}));
  bias = register_parameter("bias", at::zeros({num_features_}));
  running_mean = register_buffer("running_mean", at::zeros({num_features_}));
  running_var = register_buffer("running_var", at::ones({num_features_}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::scalar_tensor(0, at::kLong));
}

void BatchNorm2dImpl::mark_folded() { folded_ = true; }

void BatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "petseg::BatchNorm2d(" << num_features_ << ", eps=" << eps_ << ", momentum=" << momentum_
         << (sync_ ? ", synchronised" : "") << (folded_ ? ", folded into its convolution" : "") << ")";
}

torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& x) {
  if (folded_) {
    PETSEG_CHECK(!is_training(), "a BatchNorm2d folded into its convolution is for inference only: this model was "
                                 "folded (model/fold.h) and cannot train");
    return x;
  }
  PETSEG_CHECK(x.dim() == 4, "BatchNorm2d expects [N,C,H,W], got ", x.dim(), " dimensions");
  if (is_training()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (!sync_ || !is_training()) {
    return at::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_,
                          /*cudnn_enabled=*/true);
  }
  return SyncBatchNormFunction::apply(x, weight, bias, running_mean, running_var, momentum_, eps_, &sync_)[0];
}

int convert_sync_batchnorm(torch::nn::Module& module, const AllreduceSum& allreduce) {
  int n = 0;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* bn = m->as<BatchNorm2dImpl>()) {
      bn->set_sync(allreduce);
      ++n;
    }
  }
  return n;
}

}  // namespace petseg::model
