// dist: two Gloo ranks on 127.0.0.1 (child processes of this test binary) against one process on the union of
// their batches; config disagreement; a rank that dies makes the other fail naming it, not hang.
#include "dist/communicator.h"

#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/sgd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>

#include "core/check.h"
#include "core/fs.h"
#include "core/process.h"
#include "dist/launcher.h"
#include "dist_test_util.h"
#include "model/weights.h"
#include "test_util.h"

namespace petseg::dist {
namespace {

namespace fs = std::filesystem;
using namespace petseg::dist::fixtures;

// Runs `world` copies of the worker binary, each running one worker test with the torchrun environment.
std::vector<ProcessResult> run_ranks(int world, const std::string& worker, const fs::path& out) {
  const int port = free_port();
  std::vector<ProcessResult> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      results[r] = run_process({"env", "RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(world),
                                "LOCAL_RANK=" + std::to_string(r), "MASTER_ADDR=127.0.0.1",
                                "MASTER_PORT=" + std::to_string(port), "PETSEG_DIST_OUT=" + out.string(),
                                PETSEG_DIST_WORKER, "--gtest_filter=DistWorker." + worker});
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// Runs `worker` on 2 ranks and returns the tensors each rank saved as <prefix><rank>.pth, by key.
std::array<std::map<std::string, at::Tensor>, 2> two_rank_results(const std::string& worker, const std::string& prefix,
                                                                  const fs::path& dir) {
  const auto results = run_ranks(2, worker, dir);
  std::array<std::map<std::string, at::Tensor>, 2> out;
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r].exit_code, 0) << "rank " << r << ":\n" << results[r].out;
    if (results[r].exit_code != 0) return {};
    for (const auto& [k, v] : model::read_state_dict(dir / (prefix + std::to_string(r) + ".pth"))) out[r][k] = v;
  }
  return out;
}

// ---- the tests

TEST(Dist, TwoRanksEqualOneProcessOnTheUnionOfTheirBatches) {
  testing::TempDir dir;
  const auto [r0, r1] = two_rank_results("OneStep", "rank", dir.path());
  ASSERT_FALSE(r0.empty());
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

TEST(Dist, SyncBatchNormOverTwoRanksEqualsOneProcessOnTheUnionBatch) {
  testing::TempDir dir;
  const auto [r0, r1] = two_rank_results("SyncBnStep", "syncbn", dir.path());
  ASSERT_FALSE(r0.empty());
  at::manual_seed(7);
  auto net = syncable_net();  // plain BatchNorm in train mode, on both ranks' samples at once
  const auto single =
      one_train_bn_step(net, at::cat({batch_x(0), batch_x(1)}), at::cat({batch_y(0), batch_y(1)}), nullptr);
  ASSERT_EQ(single.size(), r0.size());
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string k = std::to_string(i);
    EXPECT_LT((r0.at(k) - r1.at(k)).abs().max().item<double>(), 1e-6) << "ranks differ in tensor " << i;
    EXPECT_LT((r0.at(k) - single[i]).abs().max().item<double>(), 1e-5) << "tensor " << i;
  }
}

TEST(Dist, RanksThatDisagreeFailAtStart) {
  testing::TempDir dir;
  run_ranks(2, "Disagree", dir.path());
  for (int r = 0; r < 2; ++r) {
    const std::string msg = read_text_file(dir / ("disagree" + std::to_string(r) + ".txt"));
    EXPECT_NE(msg.find("rank(s) 1 differ from rank 0"), std::string::npos) << msg;
  }
}

TEST(Dist, ADeadRankEndsTheOthersWithAnErrorNamingIt) {
  testing::TempDir dir;
  const auto t0 = std::chrono::steady_clock::now();
  run_ranks(2, "PeerDies", dir.path());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
  const std::string msg = read_text_file(dir / "died.txt");
  EXPECT_NE(msg.find("rank 0: allreduce across 2 ranks failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no longer responding: 1"), std::string::npos) << msg;
}

}  // namespace
}  // namespace petseg::dist
