// The rank side of the distributed tests: run by test_dist as child processes with the torchrun environment
// (never registered with ctest on its own).
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/check.h"
#include "core/fs.h"
#include "distributed/communicator.h"
#include "distributed/reducer.h"
#include "distributed/step_sync.h"
#include "dist_test_util.h"
#include "data/synth.h"
#include "model/weights.h"
#include "train/config.h"

namespace petseg::distributed {
namespace {

namespace fs = std::filesystem;
using namespace petseg::distributed::fixtures;

const char* out_dir() { return std::getenv("PETSEG_DIST_OUT"); }

TEST(DistWorker, OneStep) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  auto comm = make_c10d(w, {});
  at::manual_seed(7 + w.rank);  // different initializations: the broadcast must fix that
  auto net = small_net();
  std::vector<at::Tensor> state = net->parameters();
  for (auto& b : net->buffers()) state.push_back(b);
  GradientSync sync(*comm, net->parameters(), /*bucket_bytes=*/100);  // several buckets
  sync.broadcast_parameters(state);
  const auto params = one_step(net, batch_x(w.rank), batch_y(w.rank), &sync);
  model::StateDict sd;
  for (size_t i = 0; i < params.size(); ++i) sd.emplace_back(std::to_string(i), params[i]);
  model::save_state_dict(sd, fs::path(out_dir()) / ("rank" + std::to_string(w.rank) + ".pth"));
  EXPECT_GT(sync.num_buckets(), 1u);
  EXPECT_EQ(sync.launched_during_backward(), sync.num_buckets()) << "all-reduces should start inside backward";
}

TEST(DistWorker, SyncBnStep) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  auto comm = make_c10d(w, {});
  at::manual_seed(7 + w.rank);
  auto net = syncable_net();
  std::vector<at::Tensor> state = net->parameters();
  for (auto& b : net->buffers()) state.push_back(b);
  GradientSync sync(*comm, net->parameters(), /*bucket_bytes=*/100);
  sync.broadcast_parameters(state);
  Communicator* c = comm.get();
  ASSERT_EQ(model::convert_sync_batchnorm(*net, [c](at::Tensor& t) { c->allreduce_sum(t); }), 1);
  const auto tensors = one_train_bn_step(net, batch_x(w.rank), batch_y(w.rank), &sync);
  model::StateDict sd;
  for (size_t i = 0; i < tensors.size(); ++i) sd.emplace_back(std::to_string(i), tensors[i]);
  model::save_state_dict(sd, fs::path(out_dir()) / ("syncbn" + std::to_string(w.rank) + ".pth"));
}

// DDP steps as the trainer runs them (SyncBatchNorm, bucketed gradient all-reduce, StepSync with a log interval of
// 3): writes each step's count of host syncs (Communicator::host_syncs) and what StepSync decided to
// steps<rank>.txt, then the logged losses. Rank 1 alone is signalled from step 3 on.
TEST(DistWorker, StepsWithoutHostSyncs) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  auto comm = make_c10d(w, {});
  at::manual_seed(7 + w.rank);
  auto net = syncable_net();
  std::vector<at::Tensor> state = net->parameters();
  for (auto& b : net->buffers()) state.push_back(b);
  GradientSync sync(*comm, net->parameters(), /*bucket_bytes=*/100);
  sync.broadcast_parameters(state);
  Communicator* c = comm.get();
  ASSERT_EQ(model::convert_sync_batchnorm(*net, [c](at::Tensor& t) { c->allreduce_sum(t); }), 1);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  constexpr int64_t kSteps = 9;
  StepSync steps(*comm, /*log_interval=*/3, kSteps);
  at::Tensor interval = at::zeros({});
  int64_t interval_steps = 0;
  std::string report, losses = "losses";
  net->train();
  for (int64_t step = 0; step < kSteps; ++step) {
    const int64_t before = comm->host_syncs();
    opt.zero_grad(/*set_to_none=*/true);
    const int batch = 2 * int(step) + w.rank;  // a new batch each step, another on each rank
    const at::Tensor loss = at::cross_entropy_loss(net->forward(batch_x(batch)), batch_y(batch));
    loss.backward();
    sync.average_gradients();
    opt.step();
    interval += loss.detach();
    ++interval_steps;
    const StepSync::Outcome o = steps.after_step(step, interval, interval_steps, /*limit_reached=*/false,
                                                 /*signalled=*/w.rank == 1 && step >= 3);
    report += "step " + std::to_string(step) + ": " + std::to_string(comm->host_syncs() - before) + " host syncs" +
              (o.log ? ", log" : "") + (o.stop ? ", stop" : "") + "\n";
    if (o.log) {
      char text[32];
      std::snprintf(text, sizeof(text), " %.9g", o.mean_loss);
      losses += text;
      interval.zero_();
      interval_steps = 0;
    }
    if (o.stop) break;
  }
  write_file_atomic(fs::path(out_dir()) / ("steps" + std::to_string(w.rank) + ".txt"), report + losses + "\n");
}

TEST(DistWorker, Disagree) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  auto comm = make_c10d(w, {});
  try {
    train::TrainConfig config;
    if (w.rank == 1) config.spec.lr = 0.02, config.spec.model.backbone = "resnet50", config.exec.log_interval = 5;
    config.spec.data = "/data/on/host" + std::to_string(w.rank);  // each host's own mount point: not compared
    train::check_ranks_agree(*comm, config);
    FAIL() << "disagreement not detected";
  } catch (const Error& e) {
    write_file_atomic(fs::path(out_dir()) / ("disagree" + std::to_string(w.rank) + ".txt"), std::string(e.what()));
  }
}

// Each rank reads its own copy of "the" data set, and rank 1's is another one: both fail at start.
TEST(DistWorker, DisagreeOnData) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  auto comm = make_c10d(w, {});
  data::SynthOptions o;
  o.out = fs::path(out_dir()) / ("data" + std::to_string(w.rank));
  o.layout = w.rank == 0 ? "oxford-pets" : "voc";
  o.count = 8;
  o.min_side = 40;
  o.max_side = 60;
  data::synthesize(o);
  try {
    const auto train = data::SegmentationDataset::open(o.out, data::Split::kTrainval);
    const auto val = data::SegmentationDataset::open(o.out, data::Split::kTest);
    train::check_ranks_read_the_same_data(*comm, train, val, train.class_names());
    FAIL() << "disagreement not detected";
  } catch (const Error& e) {
    write_file_atomic(fs::path(out_dir()) / ("data" + std::to_string(w.rank) + ".txt"), std::string(e.what()));
  }
}

TEST(DistWorker, PeerDies) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  DistOptions o;
  o.timeout = std::chrono::seconds(20);
  auto comm = make_c10d(w, o);
  at::Tensor t = at::ones({4});
  comm->allreduce_sum(t);          // both alive
  if (w.rank == 1) std::_Exit(9);  // dies without a word
  const auto t0 = std::chrono::steady_clock::now();
  try {
    std::this_thread::sleep_for(std::chrono::seconds(5));  // let its heartbeat go stale
    comm->allreduce_sum(t);
    FAIL() << "the allreduce with a dead rank succeeded";
  } catch (const Error& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_file_atomic(fs::path(out_dir()) / "died.txt", std::string(e.what()) + "\nseconds " + std::to_string(s));
  }
}

// All-reduces every 100 ms until the link is cut under it; rank 0 says when the collectives run, and both write
// what stopped them (the error and the wall-clock time) to cut<rank>.txt.
TEST(DistWorker, UntilCut) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  DistOptions o;
  o.timeout = std::chrono::seconds(std::atoi(std::getenv("PETSEG_DIST_TIMEOUT") ? std::getenv("PETSEG_DIST_TIMEOUT")
                                                                                  : "10"));
  auto comm = make_c10d(w, o);
  at::Tensor t = at::ones({4});
  comm->allreduce_sum(t);
  if (w.rank == 0) write_file_atomic(fs::path(out_dir()) / "running.txt", std::string("ok"));
  std::string what = "still running after 120 s";
  try {
    for (int i = 0; i < 1200; ++i) {
      comm->allreduce_sum(t);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } catch (const Error& e) {
    what = e.what();
  }
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  write_file_atomic(fs::path(out_dir()) / ("cut" + std::to_string(w.rank) + ".txt"),
                    what + "\nat " + std::to_string(now) + "\n");
}

}  // namespace
}  // namespace petseg::distributed
