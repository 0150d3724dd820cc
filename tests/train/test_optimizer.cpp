// The fused optimizers (train/optimizer.h) against libtorch's per-parameter SGD and Adam on the CPU: the same
// parameters and state after several steps, steps skipped on the device by the loss scaler, and checkpoints.
#include "train/optimizer.h"

#include <ATen/ops/allclose.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"
#include "train/checkpoint.h"
#include "train/grad_scaler.h"

namespace petseg::train {
namespace {

RunSpec config(const std::string& optimizer, double lr) {
  RunSpec c;
  c.optimizer = optimizer;
  c.lr = lr;
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  return c;
}

// Parameters of several shapes (a conv weight, a bias, a matrix, a scalar-like one), the same for the same seed.
std::vector<at::Tensor> make_params(uint64_t seed) {
  at::manual_seed(seed);
  std::vector<at::Tensor> params;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{8, 3, 3, 3}, {8}, {5, 7}, {1}}) {
    params.push_back(at::randn(shape).set_requires_grad(true));
  }
  return params;
}

// Gradients that depend on the parameters and the step, as a loss's would, times `scale` (a power of two, so that
// unscaling gives back the same bits). The last parameter gets none before step 2 (a late first step).
void plant_grads(const std::vector<at::Tensor>& params, int step, double scale = 1) {
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor p = params[i].detach();
    params[i].mutable_grad() =
        i + 1 == params.size() && step < 2 ? at::Tensor() : (at::cos(p * (step + 1)) + 0.1 * p) * scale;
  }
}

// Equal within 1e-6 relative, elementwise or of the tensor's largest magnitude (moments near zero differ by ulps
// of their larger neighbours); absent (no state yet) on both sides.
void expect_close(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].defined(), b[i].defined()) << what << " " << i;
    if (!a[i].defined()) continue;
    const double scale = b[i].detach().abs().max().item<double>();
    EXPECT_TRUE(at::allclose(a[i].detach(), b[i].detach(), /*rtol=*/1e-6, /*atol=*/1e-6 * scale))
        << what << " " << i << ": largest difference " << (a[i] - b[i]).abs().max().item<float>() << " of " << scale;
  }
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

std::vector<at::Tensor> momentum_buffers(torch::optim::Optimizer& opt, const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) {
    const auto it = opt.state().find(p.unsafeGetTensorImpl());
    out.push_back(it == opt.state().end() ? at::Tensor()
                                          : static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer());
  }
  return out;
}

const torch::optim::AdamParamState& adam_state(torch::optim::Optimizer& opt, const at::Tensor& p) {
  return static_cast<const torch::optim::AdamParamState&>(*opt.state().at(p.unsafeGetTensorImpl()));
}

// Steps both optimizers `steps` times on the same gradients (each from its own parameters), with a schedule's LR.
void step_both(torch::optim::Optimizer& fused, const std::vector<at::Tensor>& fused_params,
               torch::optim::Optimizer& loop, const std::vector<at::Tensor>& loop_params, double lr, int steps) {
  for (int step = 0; step < steps; ++step) {
    for (torch::optim::Optimizer* opt : {&fused, &loop}) {
      for (auto& group : opt->param_groups()) group.options().set_lr(lr * (1.0 - 0.1 * step));
    }
    plant_grads(fused_params, step);
    plant_grads(loop_params, step);
    fused.step();
    loop.step();
  }
}

TEST(FusedOptimizer, SgdMatchesLibtorchsSgd) {
  const RunSpec c = config("sgd", 0.1);
  const std::vector<at::Tensor> fused_params = make_params(1), loop_params = make_params(1);
  const auto fused = make_optimizer(c, fused_params);
  const auto loop = make_optimizer(c, loop_params, /*fused=*/false);
  ASSERT_NE(dynamic_cast<torch::optim::SGD*>(fused.get()), nullptr);  // what checkpoints look for
  ASSERT_NE(dynamic_cast<AmpScalingStep*>(fused.get()), nullptr);
  ASSERT_EQ(dynamic_cast<AmpScalingStep*>(loop.get()), nullptr);
  step_both(*fused, fused_params, *loop, loop_params, 0.1, 6);
  expect_close(fused_params, loop_params, "parameter");
  expect_close(momentum_buffers(*fused, fused_params), momentum_buffers(*loop, loop_params), "momentum buffer");
  // Not a no-op: the parameters moved.
  EXPECT_FALSE(at::allclose(fused_params[0].detach(), make_params(1)[0], 1e-3, 1e-3));
}

TEST(FusedOptimizer, AdamMatchesLibtorchsAdam) {
  const RunSpec c = config("adam", 0.01);
  const std::vector<at::Tensor> fused_params = make_params(1), loop_params = make_params(1);
  const auto fused = make_optimizer(c, fused_params);
  const auto loop = make_optimizer(c, loop_params, /*fused=*/false);
  ASSERT_NE(dynamic_cast<torch::optim::Adam*>(fused.get()), nullptr);
  step_both(*fused, fused_params, *loop, loop_params, 0.01, 6);
  expect_close(fused_params, loop_params, "parameter");
  for (size_t i = 0; i < fused_params.size(); ++i) {
    const auto& f = adam_state(*fused, fused_params[i]);
    const auto& l = adam_state(*loop, loop_params[i]);
    EXPECT_EQ(f.step(), l.step()) << i;
    EXPECT_EQ(f.step(), i + 1 == fused_params.size() ? 4 : 6) << i;
    expect_close({f.exp_avg(), f.exp_avg_sq()}, {l.exp_avg(), l.exp_avg_sq()}, "moment");
  }
}

// Steps through the loss scaler, the good ones against libtorch's SGD on the unscaled gradients. "ig" skips a
// parameter's very first step (the momentum buffer must still start at the next step's gradient).
TEST(FusedOptimizer, LossScalerSkipsAStepWithAnInfGradientOnTheDevice) {
  for (const std::string pattern : {"gig", "ig"}) {
    SCOPED_TRACE(pattern);
    const RunSpec c = config("sgd", 0.1);
    const std::vector<at::Tensor> params = make_params(2), reference = make_params(2);
    const auto fused = make_optimizer(c, params);
    const auto loop = make_optimizer(c, reference, /*fused=*/false);
    GradScalerOptions so;
    so.init_scale = 1024;
    GradScaler scaler(at::kCPU, so);
    for (int step = 0; step < int(pattern.size()); ++step) {
      const double scale = scaler.current_scale();
      plant_grads(params, step, scale);
      if (pattern[step] == 'i') {
        params[1].mutable_grad()[3] = std::numeric_limits<float>::infinity();
        const std::vector<at::Tensor> before = clones(params);
        std::vector<at::Tensor> buffers_before;
        for (const auto& b : momentum_buffers(*fused, params)) buffers_before.push_back(b.defined() ? b.clone() : b);
        scaler.step(*fused);
        EXPECT_EQ(scaler.take_skipped_steps(), 1);
        scaler.update();
        EXPECT_EQ(scaler.current_scale(), scale / 2);  // backed off
        for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i].detach(), before[i])) << i;
        const std::vector<at::Tensor> buffers = momentum_buffers(*fused, params);
        for (size_t i = 0; i < params.size(); ++i) {
          if (buffers_before[i].defined()) {
            EXPECT_TRUE(at::equal(buffers[i], buffers_before[i])) << i;
          }
        }
      } else {
        scaler.step(*fused);
        EXPECT_EQ(scaler.take_skipped_steps(), 0);
        scaler.update();
        plant_grads(reference, step);
        loop->step();
        expect_close(params, reference, "parameter");
      }
    }
    expect_close(momentum_buffers(*fused, params), momentum_buffers(*loop, reference), "momentum buffer");
  }
}

// The parameters as a module, which is what checkpoints save.
struct Params : torch::nn::Module {
  explicit Params(uint64_t seed) {
    const std::vector<at::Tensor> params = make_params(seed);
    for (size_t i = 0; i < params.size(); ++i) register_parameter("p" + std::to_string(i), params[i]);
  }
};

void run_steps(Params& net, torch::optim::Optimizer& opt, int from, int to) {
  for (int step = from; step < to; ++step) {
    plant_grads(net.parameters(), step);
    opt.step();
  }
}

TEST(FusedOptimizer, CheckpointAfterFusedStepsContinuesLikeAnUninterruptedRun) {
  testing::TempDir dir;
  for (const std::string name : {"sgd", "adam"}) {
    SCOPED_TRACE(name);
    const RunSpec c = config(name, 0.05);
    const auto straight = std::make_shared<Params>(3);
    const auto straight_opt = make_optimizer(c, straight->parameters());
    run_steps(*straight, *straight_opt, 0, 6);

    const auto first = std::make_shared<Params>(3);
    const auto first_opt = make_optimizer(c, first->parameters());
    run_steps(*first, *first_opt, 0, 3);
    sync_optimizer_state(*first_opt);
    const auto path = dir / (name + ".pt");
    save_checkpoint(path, *first, *first_opt, TrainState{}, TrainConfig{c, {}});

    const auto resumed = std::make_shared<Params>(4);  // other values: the checkpoint's replace them
    const auto resumed_opt = make_optimizer(c, resumed->parameters());
    load_checkpoint(path, *resumed, resumed_opt.get());
    run_steps(*resumed, *resumed_opt, 3, 6);
    const std::vector<at::Tensor> a = straight->parameters(), b = resumed->parameters();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].detach(), b[i].detach())) << i;
    if (name == "adam") {
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(adam_state(*resumed_opt, b[i]).step(), adam_state(*straight_opt, a[i]).step()) << i;
      }
    }
  }
}

// Fused Adam counts its steps on the device, where the loss scaler's skips are taken back; a checkpoint (after
// sync_optimizer_state) holds the steps taken, as Python's would, and the run continues like libtorch's Adam fed
// only the good steps.
TEST(FusedOptimizer, AdamCheckpointHoldsTheStepsTheLossScalerTook) {
  testing::TempDir dir;
  const RunSpec c = config("adam", 0.01);
  const auto net = std::make_shared<Params>(5);
  const std::vector<at::Tensor> params = net->parameters(), reference = make_params(5);
  const auto fused = make_optimizer(c, params);
  const auto loop = make_optimizer(c, reference, /*fused=*/false);
  GradScalerOptions so;
  so.init_scale = 1024;
  GradScaler scaler(at::kCPU, so);
  const std::string pattern = "gigg";
  for (int step = 0; step < int(pattern.size()); ++step) {
    plant_grads(params, step, scaler.current_scale());
    if (pattern[step] == 'i') params[0].mutable_grad()[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
    scaler.step(*fused);
    scaler.update();
    if (pattern[step] == 'g') {
      plant_grads(reference, step);
      loop->step();
    }
  }
  EXPECT_EQ(scaler.take_skipped_steps(), 1);
  expect_close(params, reference, "parameter");
  sync_optimizer_state(*fused);
  const auto path = dir / "adam.pt";
  save_checkpoint(path, *net, *fused, TrainState{}, TrainConfig{c, {}});
  const auto restored = std::make_shared<Params>(6);
  const auto plain = make_optimizer(c, restored->parameters(), /*fused=*/false);
  load_checkpoint(path, *restored, plain.get());
  const std::vector<at::Tensor> loaded = restored->parameters();
  for (size_t i = 0; i < loaded.size(); ++i) {
    const int64_t taken = i + 1 == loaded.size() ? 2 : 3;  // the last parameter's first gradient came at step 2
    EXPECT_EQ(adam_state(*plain, loaded[i]).step(), taken) << i;
    EXPECT_EQ(adam_state(*loop, reference[i]).step(), taken) << i;
  }
}

}  // namespace
}  // namespace petseg::train
