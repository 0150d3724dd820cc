// The checks that need a GPU (ctest label `gpu`): forward parity with torchvision on the same GPU, training steps
// on CUDA with fp16 (loss-scaled) and bf16 autocast, channels_last + bf16 and TorchScript training, the aux head's
// 10x rate through the fused optimizer, pinned batches copied without blocking, the NCCL backend in a world of one,
// two Gloo ranks on one GPU, eval and predict on CUDA (also at the images' own sizes, in windows, in bf16). Each
// skips with a message where there is no CUDA device; scripts/gpu_check.sh runs them on a GPU machine, where a lease is minutes: the runs are tiny ResNet-50 ones (the
// parity test alone is about ResNet-101), without cuDNN's autotuning, and write no checkpoint they do not read.
#include <ATen/Context.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>
#include <torch/optim/sgd.h>
#include <cstdlib>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/autocast.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/process.h"
#include "data/loader.h"
#include "data/oxford_pets.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "distributed/communicator.h"
#include "distributed/launcher.h"
#include "image/image_io.h"
#include "model/deeplab_reference.h"
#include "model/factory.h"
#include "model/torch_archive.h"
#include "test_data.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/predict.h"
#include "train/eval.h"
#include "train/loss.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/trainer.h"

namespace petseg {
namespace {

namespace fs = std::filesystem;

#define PETSEG_REQUIRE_CUDA()                                                                                   \
  do {                                                                                                          \
    if (!cuda_available())                                                                                      \
      GTEST_SKIP() << "no CUDA device here: GPU check not run (scripts/gpu_check.sh runs it on a GPU machine)"; \
  } while (0)

// TF32 off on both sides: the comparison is of fp32 arithmetic, not of reduced-precision convolution kernels.
TEST(Gpu, ForwardMatchesTorchvisionOnTheSameGpu) {
  PETSEG_REQUIRE_CUDA();
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  const testing::DeepLabReference ref = testing::deeplab_reference(dir, "resnet101", false, "cuda");
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  model::ModelConfig config;
  config.backbone = "resnet101";
  config.num_classes = 21;
  config.aux_loss = true;
  config.weights = ref.weights;
  model::SegmentationModel net = model::build_segmentation_model(config).model;
  net->to(at::kCUDA);
  net->eval();
  torch::NoGradGuard no_grad;
  const model::SegmentationOutput y = net->forward(ref.input.to(at::kCUDA));
  EXPECT_LT((y.out.cpu() - ref.out).abs().max().item<double>(), 1e-3);
  EXPECT_LT((y.aux.cpu() - ref.aux).abs().max().item<double>(), 1e-3);
}

class GpuTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!cuda_available()) return;
    dir_ = new testing::TempDir();
    data::SynthOptions o;
    o.count = 24;
    o.seed = 5;
    o.min_side = 64;
    o.max_side = 120;
    data_ = testing::shared_synthetic_set(o);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static train::TrainConfig tiny(const std::string& name, const std::string& amp) {
    train::TrainConfig c;
    c.spec.data = data_;
    c.exec.runs_dir = dir_->path() / "runs";
    c.exec.name = name;
    c.exec.device = "cuda";
    c.spec.amp = amp;
    c.spec.epochs = 2;
    c.spec.batch_size = 4;
    c.spec.image_size = 96;
    c.exec.loader.num_workers = 2;
    c.exec.loader.pin_memory = true;
    c.spec.max_steps = 4;
    c.spec.eval_batches = 2;
    c.exec.log_interval = 2;
    c.exec.cudnn_benchmark = false;  // autotuning pays over thousands of steps, not over eight
    c.spec.model.backbone = "resnet50";
    return c;
  }
  static std::vector<nlohmann::json> metrics(const std::string& name) {
    std::vector<nlohmann::json> lines;
    std::ifstream in(dir_->path() / "runs" / name / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }
  static testing::TempDir* dir_;
  static fs::path data_;  // shared, read only
};
testing::TempDir* GpuTrain::dir_ = nullptr;
fs::path GpuTrain::data_;

TEST_F(GpuTrain, StepsWithFp16LossScalingAndBf16Autocast) {
  PETSEG_REQUIRE_CUDA();
  for (const char* amp : {"fp16", "bf16"}) {
    const std::string name = std::string("amp-") + amp;
    ASSERT_EQ(train::run_train(tiny(name, amp)), 0) << amp;
    const auto epochs = metrics(name);
    ASSERT_EQ(epochs.size(), 2u) << amp;
    for (const auto& e : epochs) EXPECT_TRUE(std::isfinite(e["train_loss"].get<double>())) << amp;
    const train::CheckpointInfo info = train::read_checkpoint_info(dir_->path() / "runs" / name / "last.pt");
    if (std::string(amp) == "fp16") {
      EXPECT_GT(info.state.loss_scale, 0);
      EXPECT_LT(epochs.back()["skipped_steps"].get<int64_t>(), 4) << "the loss scaler skipped every step";
    } else {
      EXPECT_EQ(info.state.loss_scale, 0);
    }
  }
}

TEST_F(GpuTrain, EvalAndPredictRunOnCudaAndAgreeWithTheCpu) {
  PETSEG_REQUIRE_CUDA();
  ASSERT_EQ(train::run_train(tiny("fp32", "off")), 0);
  const fs::path ckpt = dir_->path() / "runs/fp32/last.pt";
  at::globalContext().setAllowTF32CuDNN(false);
  train::EvalOptions eval;
  eval.checkpoint = ckpt;
  eval.device = "cuda";
  const train::EvalSummary gpu = train::run_eval(eval);
  eval.device = "cpu";
  const train::EvalSummary cpu = train::run_eval(eval);
  EXPECT_EQ(gpu.images, cpu.images);
  EXPECT_NEAR(gpu.scores.mean_iou, cpu.scores.mean_iou, 0.01);
  const fs::path image = data_ / "images/Abyssinian_1.jpg";
  train::PredictOptions p;
  p.checkpoint = ckpt;
  p.inputs = {image};
  p.out = dir_->path() / "pred-cuda";
  p.device = "cuda";
  EXPECT_EQ(train::run_predict(p).written, 1);
  p.out = dir_->path() / "pred-cpu";
  p.device = "cpu";
  EXPECT_EQ(train::run_predict(p).written, 1);
  const auto mask = [&](const char* folder) {
    const std::vector<uint8_t> bytes = read_file(dir_->path() / folder / "Abyssinian_1_mask.png");
    return image::decode_mask(bytes.data(), bytes.size());
  };
  const image::Image a = mask("pred-cuda"), b = mask("pred-cpu");
  ASSERT_EQ(a.pixels.size(), b.pixels.size());
  size_t same = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) same += a.pixels[i] == b.pixels[i];
  EXPECT_GT(double(same) / double(a.pixels.size()), 0.99) << "CUDA and CPU masks differ in more than 1% of pixels";
}

// Inference at the images' own sizes on CUDA: sliding windows with flips (tiles to the device, sums on the host), the
// shorter side in bf16 with the memory format timed, TorchScript; each scores as the CPU does (kernels differ, TF32 off).
TEST_F(GpuTrain, InferenceAtOwnSizesInWindowsAndBf16RunsOnCuda) {
  PETSEG_REQUIRE_CUDA();
  ASSERT_EQ(train::run_train(tiny("infer", "off")), 0);
  at::globalContext().setAllowTF32CuDNN(false);
  train::EvalOptions eval;
  eval.checkpoint = dir_->path() / "runs/infer/last.pt";
  eval.inference.mode = "slide";
  eval.inference.tile = 64;
  eval.inference.stride = 48;
  eval.inference.tta = {"flip"};
  eval.inference.memory_format = "contiguous";  // not timed here: the CPU halves would time both formats on 2 models
  eval.device = "cuda";
  const train::EvalSummary gpu = train::run_eval(eval);
  eval.device = "cpu";
  const train::EvalSummary cpu = train::run_eval(eval);
  EXPECT_EQ(gpu.images, cpu.images);
  EXPECT_NEAR(gpu.scores.mean_iou, cpu.scores.mean_iou, 0.01);
  eval.inference = {};
  eval.inference.memory_format = "contiguous";
  eval.inference.resize = "shorter";
  eval.device = "cuda";
  const train::EvalSummary fp32 = train::run_eval(eval);
  eval.inference.precision = "bf16";
  const train::EvalSummary bf16 = train::run_eval(eval);
  eval.torch_script = true;
  const train::EvalSummary script = train::run_eval(eval);
  EXPECT_NEAR(bf16.scores.mean_iou, fp32.scores.mean_iou, 0.03);
  EXPECT_NEAR(script.scores.mean_iou, bf16.scores.mean_iou, 0.01);
}

TEST_F(GpuTrain, PinnedBatchesCopyToTheGpuWithoutBlocking) {
  PETSEG_REQUIRE_CUDA();
  data::LoaderOptions o;
  o.batch_size = 4;
  o.image_size = 96;
  o.num_workers = 2;
  o.pin_memory = true;
  data::DataLoader loader(
      std::make_shared<const data::SegmentationDataset>(data::SegmentationDataset::open(data_, data::Split::kTrainval)),
      o);
  ASSERT_TRUE(loader.pinned());
  loader.start_epoch(0);
  for (int i = 0; i < 3; ++i) {
    auto b = loader.next();
    ASSERT_TRUE(b.has_value());
    ASSERT_TRUE(b->images.is_pinned() && b->masks.is_pinned());
    const at::Tensor x = b->images.to(at::kCUDA, /*non_blocking=*/true);
    const at::Tensor y = b->masks.to(at::kCUDA, /*non_blocking=*/true);
    torch::cuda::synchronize();
    EXPECT_TRUE(at::equal(x.cpu(), b->images));
    EXPECT_TRUE(at::equal(y.cpu(), b->masks));
  }
}

// A resume on CUDA continues where the run stopped: the checkpoint keeps every CUDA generator (ASPP's dropout draws
// from it) and restores it. Not bit-exact as on the CPU: CUDA's backward of bilinear upsampling accumulates with
// atomics, so the two runs agree to a tolerance.
TEST_F(GpuTrain, ResumeOnCudaRestoresItsGeneratorsAndFollowsTheUninterruptedRun) {
  PETSEG_REQUIRE_CUDA();
  ASSERT_EQ(train::run_train(tiny("cuda-straight", "off")), 0);
  train::TrainConfig interrupted = tiny("cuda-interrupted", "off");
  interrupted.exec.stop_after = 6;  // in the middle of the second epoch
  ASSERT_EQ(train::run_train(interrupted), train::kExitInterrupted);
  const fs::path stopped = dir_->path() / "runs/cuda-interrupted/last.pt";
  bool has_cuda_rng = false;
  for (const auto& [key, value] : model::read_state_dict(stopped)) has_cuda_rng |= key == "rng_cuda/0";
  EXPECT_TRUE(has_cuda_rng) << "the checkpoint does not keep the CUDA generator";
  // Loading the checkpoint for a resume puts the saved CUDA generator back.
  at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, 0));
  at::Tensor saved;
  for (const auto& [key, value] : model::read_state_dict(stopped)) {
    if (key == "rng_cuda/0") saved = value;
  }
  gen.set_current_seed(12345);
  model::SegmentationModel probe = model::build_segmentation_architecture(train::read_checkpoint_info(stopped).config.spec.model);
  auto sgd = std::make_unique<torch::optim::SGD>(probe->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  train::load_checkpoint(stopped, *probe, sgd.get());
  EXPECT_TRUE(at::equal(gen.get_state(), saved)) << "the CUDA generator was not restored";
  train::TrainRequest resume{tiny("", "off")};  // the same execution options; the spec is the run's
  resume.resume_dir = dir_->path() / "runs/cuda-interrupted";
  ASSERT_EQ(train::run_train(resume), 0);
  const auto a = train::load_checkpoint_model(dir_->path() / "runs/cuda-straight/last.pt");
  const auto b = train::load_checkpoint_model(dir_->path() / "runs/cuda-interrupted/last.pt");
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) {
    const at::Tensor& x = item.value();
    const at::Tensor& y = pb[item.key()];
    const double scale = 1.0 + x.abs().max().item<double>();
    EXPECT_LT((x - y).abs().max().item<double>(), 1e-3 * scale) << item.key() << " differs after a CUDA resume";
  }
}

// No step between log steps waits for the GPU: the real trainer with CUDA's sync debug mode set to "error" around
// those steps (PETSEG_SYNC_CHECK), fp32 and fp16 (the loss scaler's skip decision stays on the device; and the loss
// is cross-entropy + Dice with class weights, whose sums and normalizers stay on the device too).
TEST_F(GpuTrain, StepsBetweenLogStepsNeverSynchronise) {
  PETSEG_REQUIRE_CUDA();
  // The mode set from this binary must reach c10_cuda's checks: a plain .item() must throw under it.
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  bool effective = false;
  try {
    at::ones({1}, at::TensorOptions().device(at::kCUDA)).item<float>();
  } catch (const c10::Error&) {
    effective = true;
  }
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  ASSERT_TRUE(effective) << "CUDA's sync debug mode set from a petseg binary does not reach c10_cuda";
  ::setenv("PETSEG_SYNC_CHECK", "1", 1);
  for (const char* amp : {"off", "fp16"}) {
    train::TrainConfig c = tiny(std::string("nosync-") + amp, amp);
    if (std::string(amp) == "fp16") {
      c.spec.loss = "ce+dice";
      c.spec.class_weights = "auto";
    }
    c.exec.checkpoints = false;
    c.spec.epochs = 1;
    c.spec.batch_size = 2;  // enough steps in the small split: with log steps at 4 and the last, 3 and 5 are checked
    c.spec.max_steps = 8;
    c.exec.log_interval = 4;
    EXPECT_EQ(train::run_train(c), 0) << amp;
  }
  ::unsetenv("PETSEG_SYNC_CHECK");
}

// What only CUDA runs of the training loop exercise: channels_last with bf16 autocast (cuDNN's NHWC kernels) and a
// TorchScript model trained on the GPU.
TEST_F(GpuTrain, ChannelsLastBf16AndTorchScriptTrainOnCuda) {
  PETSEG_REQUIRE_CUDA();
  train::TrainConfig cl = tiny("cl-bf16", "bf16");
  cl.exec.channels_last = true;
  train::TrainConfig script = tiny("script", "off");
  script.exec.torch_script = true;
  for (train::TrainConfig c : {cl, script}) {
    c.exec.checkpoints = false;
    c.spec.epochs = 1;
    ASSERT_EQ(train::run_train(c), 0) << c.exec.name;
    const auto epochs = metrics(c.exec.name);
    ASSERT_EQ(epochs.size(), 1u) << c.exec.name;
    EXPECT_TRUE(std::isfinite(epochs[0]["train_loss"].get<double>())) << c.exec.name;
    EXPECT_FALSE(fs::exists(dir_->path() / "runs" / c.exec.name / "last.pt")) << "--no-checkpoints wrote one";
  }
}

// torchvision's recipe on the GPU: the aux head's parameters step at 10x the rate of the rest, through the fused
// SGD kernels on CUDA, as libtorch's own SGD does on the CPU with the same groups and gradients.
TEST(Gpu, AuxHeadStepsAtTenTimesItsRateThroughTheFusedOptimizer) {
  PETSEG_REQUIRE_CUDA();
  train::RunSpec spec;
  spec.model.backbone = "resnet50";
  spec.model.num_classes = 3;
  spec.model.aux_loss = true;
  spec.lr = 0.01;
  ASSERT_EQ(spec.aux_lr_mult, 10);
  at::manual_seed(3);
  model::SegmentationModel gpu = model::build_segmentation_architecture(spec.model);
  at::manual_seed(3);
  model::SegmentationModel cpu = model::build_segmentation_architecture(spec.model);
  gpu->to(at::kCUDA);
  const std::vector<train::ParamGroup> gpu_groups = train::param_groups_of(gpu, spec);
  const std::vector<train::ParamGroup> cpu_groups = train::param_groups_of(cpu, spec);
  ASSERT_EQ(gpu_groups.size(), 2u);
  ASSERT_FALSE(gpu_groups[1].params.empty()) << "no aux-head group";
  const auto fused = train::make_optimizer(spec, gpu_groups, /*fused=*/true);
  const auto loop = train::make_optimizer(spec, cpu_groups, /*fused=*/false);
  for (int step = 0; step < 3; ++step) {
    const double lr = spec.lr * (1.0 - 0.2 * step);
    train::set_learning_rates(*fused, gpu_groups, lr);
    train::set_learning_rates(*loop, cpu_groups, lr);
    std::vector<at::Tensor> expected;  // the first step, from no momentum: each group moves at lr x its multiplier
    for (size_t g = 0; g < cpu_groups.size(); ++g) {
      for (size_t i = 0; i < cpu_groups[g].params.size(); ++i) {
        const at::Tensor p = cpu_groups[g].params[i].detach();
        const at::Tensor grad = at::cos(p * (step + 1));
        cpu_groups[g].params[i].mutable_grad() = grad;
        gpu_groups[g].params[i].mutable_grad() = grad.to(at::kCUDA);
        if (i == 0) expected.push_back(p - lr * cpu_groups[g].lr_mult * (grad + spec.weight_decay * p));
      }
    }
    fused->step();
    loop->step();
    for (size_t g = 0; step == 0 && g < gpu_groups.size(); ++g) {
      const at::Tensor moved = gpu_groups[g].params.front().detach().cpu();
      EXPECT_LT((moved - expected[g]).abs().max().item<double>(), 1e-5)
          << "group " << g << " did not step at lr x " << cpu_groups[g].lr_mult;
    }
  }
  for (size_t g = 0; g < cpu_groups.size(); ++g) {
    for (size_t i = 0; i < cpu_groups[g].params.size(); ++i) {
      const at::Tensor a = gpu_groups[g].params[i].detach().cpu(), b = cpu_groups[g].params[i].detach();
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-4 * (1 + b.abs().max().item<double>()))
          << "group " << g << " parameter " << i;
    }
  }
}

// Two ranks that share the machine's one GPU: NCCL refuses that, Gloo carries CUDA tensors through the host.
TEST_F(GpuTrain, TwoGlooRanksTrainOnOneGpu) {
  PETSEG_REQUIRE_CUDA();
  const std::string runs = (dir_->path() / "runs").string();
  const ProcessResult r = run_process(
      {"sh", "-c", "exec \"$@\" 2>&1", "sh", PETSEG_BIN, "train", "--data", data_.string(),
       "--runs-dir", runs, "--name", "gloo-2", "--device", "cuda", "--nproc-per-node", "2", "--backend", "gloo",
       "--backbone", "resnet50", "--image-size", "64", "--batch-size", "2", "--epochs", "1", "--max-steps", "3",
       "--eval-batches", "1", "--num-workers", "1", "--no-cudnn-benchmark", "--no-checkpoints", "--dist-timeout",
       "60"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto epochs = metrics("gloo-2");
  ASSERT_EQ(epochs.size(), 1u) << r.out;
  EXPECT_EQ(epochs[0]["ranks"].get<int>(), 2);
  EXPECT_TRUE(std::isfinite(epochs[0]["train_loss"].get<double>()));
  EXPECT_NE(r.out.find("gloo"), std::string::npos) << r.out;
}

TEST(Gpu, NcclBackendInAWorldOfOne) {
  PETSEG_REQUIRE_CUDA();
  ASSERT_TRUE(distributed::kHaveNccl) << "this CUDA build was configured without NCCL";
  distributed::WorldInfo w;
  w.master_port = distributed::free_port();
  distributed::DistOptions o;  // backend auto: NCCL when training on CUDA
  o.timeout = std::chrono::seconds(60);  // a hung rendezvous ends within the test's own limit
  std::unique_ptr<distributed::Communicator> comm = distributed::make_c10d(w, o, /*cuda=*/true);
  EXPECT_EQ(comm->backend(), "nccl");
  at::Tensor host = at::arange(6, at::kFloat);
  comm->allreduce_sum(host);  // host tensors travel through the rank's GPU
  EXPECT_TRUE(at::equal(host, at::arange(6, at::kFloat)));
  at::Tensor device = at::arange(6, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA));
  comm->allreduce_sum_async(device)();
  comm->broadcast(device, 0);
  comm->barrier();
  EXPECT_TRUE(at::equal(device.cpu(), at::arange(6, at::kFloat)));
}

// Every loss (forward and backward, fp32 and under bf16 autocast) with CUDA's sync debug mode set to "error": none
// waits for the GPU, so none slows a training step. Each agrees with the same loss on the CPU.
TEST(Gpu, LossesNeverSynchroniseAndAgreeWithTheCpu) {
  PETSEG_REQUIRE_CUDA();
  at::manual_seed(4);
  const at::Tensor logits = at::randn({2, 4, 33, 31});
  at::Tensor target = at::randint(0, 4, {2, 33, 31}, at::kLong);
  target.masked_fill_(at::randint(0, 5, target.sizes(), at::kLong) == 0, kIgnoreIndex);
  const at::Tensor weights = at::rand({4}) + 0.5;
  const at::Device cuda(at::kCUDA);
  const at::Tensor target_cuda = target.to(cuda), weights_cuda = weights.to(cuda);
  for (train::LossKind kind : {train::LossKind::kCrossEntropy, train::LossKind::kDice, train::LossKind::kFocal,
                               train::LossKind::kCrossEntropyDice}) {
    SCOPED_TRACE(train::loss_kind_name(kind));
    for (bool amp : {false, true}) {
      const at::Tensor x = logits.to(cuda).requires_grad_(true);
      at::Tensor loss;
      c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
      try {
        AutocastGuard autocast(at::kCUDA, at::kBFloat16, amp);
        const at::Tensor logits_in = amp ? x.to(at::kBFloat16) : x;
        loss = train::compute_loss({kind, weights_cuda, /*ignore_index=*/3}, logits_in, target_cuda);
        loss.backward();
      } catch (const c10::Error& e) {
        ADD_FAILURE() << "amp " << amp << ": " << e.what_without_backtrace();
      }
      c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
      ASSERT_TRUE(loss.defined());
      EXPECT_EQ(loss.scalar_type(), at::kFloat);
      const double cpu = train::compute_loss({kind, weights, 3}, logits, target).item<double>();
      EXPECT_NEAR(loss.item<double>(), cpu, (amp ? 2e-2 : 1e-5) * std::max(1.0, std::abs(cpu))) << "amp " << amp;
    }
  }
}

}  // namespace
}  // namespace petseg
