// dist: two Gloo ranks on 127.0.0.1 (child processes of this test binary) against one process on the union of
// their batches; config disagreement; a rank that dies makes the other fail naming it, not hang.
#include "dist/communicator.h"

#include <ATen/ops/randn.h>
#include <ATen/ops/randint.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/activation.h>
#include <torch/optim/sgd.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>

#include "core/check.h"
#include "core/fs.h"
#include "core/process.h"
#include "model/weights.h"
#include "test_util.h"

namespace petseg::dist {
namespace {

namespace fs = std::filesystem;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string self_exe() { return fs::read_symlink("/proc/self/exe").string(); }

// Runs `world` copies of this binary, each running one worker test with the torchrun environment.
std::vector<ProcessResult> run_ranks(int world, const std::string& worker, const fs::path& out) {
  const int port = free_port();
  std::vector<ProcessResult> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      results[r] = run_process({"env", "RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(world),
                                "LOCAL_RANK=" + std::to_string(r), "MASTER_ADDR=127.0.0.1",
                                "MASTER_PORT=" + std::to_string(port), "PETSEG_DIST_OUT=" + out.string(), self_exe(),
                                "--gtest_filter=DistWorker." + worker, "--gtest_also_run_disabled_tests"});
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

torch::nn::Sequential small_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)),
                               torch::nn::BatchNorm2d(8), torch::nn::ReLU(),
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 3, 1)));
}

// One SGD step; BatchNorm frozen (eval mode) so the union of batches is exactly equivalent.
std::vector<at::Tensor> one_step(torch::nn::Sequential& net, const at::Tensor& x, const at::Tensor& y,
                                 GradientSync* sync) {
  net->train();
  net[1]->as<torch::nn::BatchNorm2d>()->eval();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  at::cross_entropy_loss(net->forward(x), y).backward();
  if (sync) sync->average_gradients();
  opt.step();
  return net->parameters();
}

at::Tensor batch_x(int rank) {
  at::manual_seed(100 + rank);
  return at::randn({2, 3, 8, 8});
}
at::Tensor batch_y(int rank) {
  at::manual_seed(200 + rank);
  return at::randint(0, 3, {2, 8, 8}, at::kLong);
}

const char* out_dir() { return std::getenv("PETSEG_DIST_OUT"); }

// ---- workers (run only as children, with the torchrun environment)

TEST(DistWorker, DISABLED_OneStep) {
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
}

TEST(DistWorker, DISABLED_Disagree) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  auto comm = make_c10d(w, {});
  try {
    check_same_on_all_ranks(*comm, "the configuration", w.rank == 1 ? 42 : 41);
    FAIL() << "disagreement not detected";
  } catch (const Error& e) {
    write_file_atomic(fs::path(out_dir()) / ("disagree" + std::to_string(w.rank) + ".txt"), std::string(e.what()));
  }
}

TEST(DistWorker, DISABLED_PeerDies) {
  if (!out_dir()) GTEST_SKIP() << "child-process worker";
  const WorldInfo w = world_from_env();
  DistOptions o;
  o.timeout = std::chrono::seconds(20);
  auto comm = make_c10d(w, o);
  at::Tensor t = at::ones({4});
  comm->allreduce_sum(t);  // both alive
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

// ---- the tests

TEST(Dist, TwoRanksEqualOneProcessOnTheUnionOfTheirBatches) {
  testing::TempDir dir;
  const auto results = run_ranks(2, "DISABLED_OneStep", dir.path());
  for (int r = 0; r < 2; ++r) ASSERT_EQ(results[r].exit_code, 0) << "rank " << r << ":\n" << results[r].out;
  std::map<std::string, at::Tensor> r0, r1;
  for (const auto& [k, v] : model::read_state_dict(dir / "rank0.pth")) r0[k] = v;
  for (const auto& [k, v] : model::read_state_dict(dir / "rank1.pth")) r1[k] = v;
  at::manual_seed(7);  // rank 0's initialization, which the broadcast gave everyone
  auto net = small_net();
  const auto single = one_step(net, at::cat({batch_x(0), batch_x(1)}), at::cat({batch_y(0), batch_y(1)}), nullptr);
  ASSERT_EQ(single.size(), r0.size());
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string k = std::to_string(i);
    EXPECT_TRUE(at::equal(r0.at(k), r1.at(k))) << "ranks differ in parameter " << i;
    EXPECT_LT((r0.at(k) - single[i]).abs().max().item<double>(), 1e-5) << "parameter " << i;
  }
}

TEST(Dist, RanksThatDisagreeFailAtStart) {
  testing::TempDir dir;
  run_ranks(2, "DISABLED_Disagree", dir.path());
  for (int r = 0; r < 2; ++r) {
    const std::string msg = read_text_file(dir / ("disagree" + std::to_string(r) + ".txt"));
    EXPECT_NE(msg.find("rank(s) 1 differ from rank 0"), std::string::npos) << msg;
  }
}

TEST(Dist, ADeadRankEndsTheOthersWithAnErrorNamingIt) {
  testing::TempDir dir;
  const auto t0 = std::chrono::steady_clock::now();
  run_ranks(2, "DISABLED_PeerDies", dir.path());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
  const std::string msg = read_text_file(dir / "died.txt");
  EXPECT_NE(msg.find("rank 0: allreduce across 2 ranks failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no longer responding: 1"), std::string::npos) << msg;
}

}  // namespace
}  // namespace petseg::dist
