// The fp16 loss scaler: torch.amp.GradScaler's rules, checked on fp32 tensors with planted infs/NaNs on the CPU,
// and its scale trajectory against Python's GradScaler on the same sequence of steps; each with libtorch's SGD
// (the verdict read back) and the fused SGD of train/optimizer.h (the step skipped on the device).
#include "train/grad_scaler.h"

#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "core/check.h"
#include "test_util.h"
#include "train/optimizer.h"

namespace petseg::train {
namespace {

RunSpec plain_sgd() {
  RunSpec c;
  c.optimizer = "sgd";
  c.lr = 1.0;
  c.momentum = 0;
  c.weight_decay = 0;
  return c;
}

// One parameter with a planted gradient, an SGD optimizer (lr 1; fused or libtorch's) over it, and a scaler.
struct Rig {
  at::Tensor weight = at::ones({4}).set_requires_grad(true);
  std::unique_ptr<torch::optim::Optimizer> opt;
  GradScaler scaler;
  explicit Rig(bool fused, GradScalerOptions o = {})
      : opt(make_optimizer(plain_sgd(), {weight}, fused)), scaler(at::kCPU, o) {}
  // Steps through the scaler; whether the optimizer stepped (the skipped count read back, as a test may).
  bool step() {
    scaler.step(*opt);
    return scaler.take_skipped_steps() == 0;
  }
  // A gradient as backward of scale(loss) would leave it: `unscaled` times the current scale.
  void plant(float unscaled, float at_index1 = 1.0f) {
    at::Tensor g = at::full({4}, unscaled * float(scaler.current_scale()));
    g[1] = at_index1 * float(scaler.current_scale());
    weight.mutable_grad() = g;
  }
};

TEST(GradScaler, ScalesTheLossAndUnscalesGradientsBeforeTheStep) {
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused SGD" : "libtorch's SGD");
    Rig r(fused);
    EXPECT_EQ(r.scaler.current_scale(), 65536.0);
    EXPECT_FLOAT_EQ(r.scaler.scale(at::full({}, 0.5f)).item<float>(), 32768.0f);
    r.plant(0.25f, 0.25f);
    EXPECT_TRUE(r.step());
    // SGD lr 1 with the unscaled gradient 0.25: 1 - 0.25.
    EXPECT_TRUE(at::equal(r.weight.detach(), at::full({4}, 0.75f)));
    // The gradient is left unscaled, by either path (as Python's).
    EXPECT_TRUE(at::equal(r.weight.grad(), at::full({4}, 0.25f)));
    r.scaler.update();
    EXPECT_EQ(r.scaler.current_scale(), 65536.0);
    EXPECT_EQ(r.scaler.growth_tracker(), 1);
  }
}

TEST(GradScaler, SkipsTheStepAndBacksOffOnInfOrNan) {
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused SGD" : "libtorch's SGD");
    for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()}) {
      Rig r(fused);
      r.plant(0.1f);
      EXPECT_TRUE(r.step());
      r.scaler.update();  // one good step: tracker 1
      r.plant(0.1f, bad);
      EXPECT_FALSE(r.step()) << bad;
      r.scaler.update();
      EXPECT_EQ(r.scaler.current_scale(), 32768.0) << bad;
      EXPECT_EQ(r.scaler.growth_tracker(), 0) << bad;
      // The weights moved only in the good step.
      EXPECT_NEAR(r.weight.detach()[0].item<float>(), 0.9f, 1e-6) << bad;
    }
  }
}

TEST(GradScaler, GrowsAfterGrowthIntervalGoodStepsInARow) {
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused SGD" : "libtorch's SGD");
    GradScalerOptions o;
    o.init_scale = 8;
    o.growth_interval = 3;
    Rig r(fused, o);
    const std::vector<double> expected = {8, 8, 16, 16, 16, 32};
    for (double want : expected) {
      r.plant(0.0f, 0.0f);
      ASSERT_TRUE(r.step());
      r.scaler.update();
      EXPECT_EQ(r.scaler.current_scale(), want);
    }
    EXPECT_EQ(r.scaler.growth_tracker(), 0);
  }
}

TEST(GradScaler, UnscaleOncePerStepAndStateRoundTrips) {
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused SGD" : "libtorch's SGD");
    Rig r(fused);
    r.plant(1.0f);
    r.scaler.unscale(*r.opt);  // e.g. before clipping
    EXPECT_THROW(r.scaler.unscale(*r.opt), Error);
    EXPECT_TRUE(r.step());  // does not unscale twice (the fused kernel gets no scale)
    EXPECT_NEAR(r.weight.detach()[0].item<float>(), 0.0f, 1e-6);
    EXPECT_THROW(r.scaler.step(*r.opt), Error);  // one step per update
    r.scaler.update();
    EXPECT_THROW(r.scaler.update(), Error);  // no update without a step
    GradScaler restored(at::kCPU);
    restored.load(r.scaler.current_scale(), r.scaler.growth_tracker());
    EXPECT_EQ(restored.current_scale(), r.scaler.current_scale());
    EXPECT_EQ(restored.growth_tracker(), r.scaler.growth_tracker());
    EXPECT_THROW(restored.load(-1, 0), Error);
    EXPECT_THROW(restored.load(8, 5000), Error);  // beyond the growth interval
  }
}

// The same sequence of good and bad steps through Python's torch.amp.GradScaler: the same scale after each step,
// and the same steps skipped.
TEST(GradScaler, FollowsPythonsGradScaler) {
  PETSEG_REQUIRE_PYTHON();
  const std::string pattern = "ggibggnggggiggg";  // good, inf, NaN
  GradScalerOptions o;
  o.init_scale = 1024;
  o.growth_interval = 3;
  std::ostringstream ours[2];
  for (bool fused : {false, true}) {
    Rig r(fused, o);
    for (char c : pattern) {
      const float bad = c == 'i'   ? std::numeric_limits<float>::infinity()
                        : c == 'n' ? std::numeric_limits<float>::quiet_NaN()
                                   : 1.0f;
      r.plant(0.5f, bad);
      ours[fused] << (r.step() ? 1 : 0) << ":";
      r.scaler.update();
      ours[fused] << r.scaler.current_scale() << " ";
    }
  }
  const std::string py = testing::run_python(R"(
import math, torch
w = torch.nn.Parameter(torch.ones(4))
opt = torch.optim.SGD([w], lr=1.0)
s = torch.amp.GradScaler("cpu", init_scale=1024, growth_interval=3)
out = []
for c in ")" + pattern + R"(":
    bad = {"i": math.inf, "n": math.nan}.get(c, 1.0)
    s.scale(torch.ones(()))  # what backward of the scaled loss would be run on
    g = torch.full((4,), 0.5) * s.get_scale()
    g[1] = bad * s.get_scale()
    w.grad = g
    before = w.detach().clone()
    s.step(opt)
    stepped = int(not torch.equal(before, w.detach()))
    s.update()
    out.append(f"{stepped}:{s.get_scale():g}")
print(" ".join(out) + " ")
)");
  EXPECT_EQ(ours[0].str() + "\n", py) << "libtorch's SGD";
  EXPECT_EQ(ours[1].str() + "\n", py) << "fused SGD";
}

}  // namespace
}  // namespace petseg::train
