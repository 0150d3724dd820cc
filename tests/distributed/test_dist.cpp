// dist: two Gloo ranks on 127.0.0.1 (child processes of this test binary) against one process on the union of
// their batches; config disagreement; a rank that dies makes the other fail naming it, not hang; the backend
// decision; DDP steps that make no host sync between log intervals.
#include "distributed/communicator.h"

#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
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
#include "distributed/launcher.h"
#include "distributed/step_sync.h"
#include "dist_test_util.h"
#include "model/weights.h"
#include "test_util.h"

namespace petseg::distributed {
namespace {

namespace fs = std::filesystem;
using namespace petseg::distributed::fixtures;

// Where each rank runs: on this machine, or inside a network namespace (a host of its own) with its own variables.
struct RankPlacement {
  std::string master_addr = "127.0.0.1";
  std::vector<std::vector<std::string>> prefix;  // per rank: e.g. {"ip", "netns", "exec", "petseg-h1"}
  std::vector<std::vector<std::string>> env;     // per rank: e.g. {"GLOO_SOCKET_IFNAME=pv1"}
};

// Runs `world` copies of the worker binary, each running one worker test with the torchrun environment.
std::vector<ProcessResult> run_ranks(int world, const std::string& worker, const fs::path& out,
                                     const RankPlacement& place = {}) {
  const int port = free_port();
  std::vector<ProcessResult> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      std::vector<std::string> argv = r < int(place.prefix.size()) ? place.prefix[r] : std::vector<std::string>{};
      for (const auto& a : {std::string("env"), "RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(world),
                            "LOCAL_RANK=" + std::to_string(r), "MASTER_ADDR=" + place.master_addr,
                            "MASTER_PORT=" + std::to_string(port), "PETSEG_DIST_OUT=" + out.string()}) {
        argv.push_back(a);
      }
      if (r < int(place.env.size())) argv.insert(argv.end(), place.env[r].begin(), place.env[r].end());
      argv.push_back(PETSEG_DIST_WORKER);
      argv.push_back("--gtest_filter=DistWorker." + worker);
      results[r] = run_process(argv);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// Runs `worker` on 2 ranks and returns the tensors each rank saved as <prefix><rank>.pth, by key.
std::array<std::map<std::string, at::Tensor>, 2> two_rank_results(const std::string& worker, const std::string& prefix,
                                                                  const fs::path& dir,
                                                                  const RankPlacement& place = {}) {
  const auto results = run_ranks(2, worker, dir, place);
  std::array<std::map<std::string, at::Tensor>, 2> out;
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r].exit_code, 0) << "rank " << r << ":\n" << results[r].out;
    if (results[r].exit_code != 0) return {};
    for (const auto& [k, v] : model::read_state_dict(dir / (prefix + std::to_string(r) + ".pth"))) out[r][k] = v;
  }
  return out;
}

// One SGD step of 2 ranks against one process on the union of their batches.
void expect_two_ranks_equal_one_process(const RankPlacement& place = {}) {
  testing::TempDir dir;
  const auto [r0, r1] = two_rank_results("OneStep", "rank", dir.path(), place);
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

// Two hosts of the test's own: network namespaces joined by a veth pair, torn down at the end. Needs root.
class TwoHosts {
 public:
  TwoHosts() {
    const std::string id = std::to_string(::getpid() % 100000);
    ns_ = {"petseg-h0-" + id, "petseg-h1-" + id};
    if_ = {"pv0-" + id, "pv1-" + id};
    const std::string net = "10.213." + std::to_string(::getpid() % 200 + 20) + ".";
    addr_ = {net + "1", net + "2"};
    ok_ = sh("ip netns add " + ns_[0]) && sh("ip netns add " + ns_[1]) &&
          sh("ip link add " + if_[0] + " netns " + ns_[0] + " type veth peer name " + if_[1] + " netns " + ns_[1]);
    for (int h = 0; h < 2 && ok_; ++h) {
      ok_ = sh(in(h) + "ip addr add " + addr_[h] + "/24 dev " + if_[h]) &&
            sh(in(h) + "ip link set " + if_[h] + " up") && sh(in(h) + "ip link set lo up");
    }
  }
  ~TwoHosts() {
    for (const auto& ns : ns_) sh("ip netns del " + ns + " 2>/dev/null");
  }
  bool ok() const { return ok_; }
  const std::string& address(int h) const { return addr_[h]; }
  bool unplug(int h) { return sh(in(h) + "ip link set " + if_[h] + " down"); }
  // Rank r on host r, Gloo bound to its veth end, the store on host 0.
  RankPlacement placement() const {
    RankPlacement p;
    p.master_addr = addr_[0];
    for (int h = 0; h < 2; ++h) {
      p.prefix.push_back({"ip", "netns", "exec", ns_[h]});
      p.env.push_back({"GLOO_SOCKET_IFNAME=" + if_[h]});
    }
    return p;
  }

 private:
  static bool sh(const std::string& command) { return run_process({"sh", "-c", command}).exit_code == 0; }
  std::string in(int h) const { return "ip netns exec " + ns_[h] + " "; }
  std::array<std::string, 2> ns_, if_, addr_;
  bool ok_ = false;
};

#define PETSEG_REQUIRE_TWO_HOSTS(hosts)                                                                     \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces (CI runs as root): not run"; \
  TwoHosts hosts;                                                                                           \
  if (!hosts.ok()) GTEST_SKIP() << "cannot make network namespaces with ip(8) here: not run"

// ---- the tests

TEST(Dist, TwoRanksEqualOneProcessOnTheUnionOfTheirBatches) { expect_two_ranks_equal_one_process(); }

// Two hosts as a user has them: each rank binds Gloo to its own network interface (GLOO_SOCKET_IFNAME) and meets
// the other through the store on host 0's address (petseg used to advertise 127.0.0.1 there and fail).
TEST(Dist, TwoHostsOverAVethPairEqualOneProcess) {
  PETSEG_REQUIRE_TWO_HOSTS(hosts);
  expect_two_ranks_equal_one_process(hosts.placement());
}

// Host 1 unplugged mid-run: host 0 ends with an error naming rank 1 within the timeout, never a silent hang.
TEST(Dist, AnUnpluggedHostIsNamedWithinTheTimeout) {
  PETSEG_REQUIRE_TWO_HOSTS(hosts);
  testing::TempDir dir;
  RankPlacement place = hosts.placement();
  for (auto& env : place.env) env.push_back("PETSEG_DIST_TIMEOUT=10");
  std::thread cutter([&] {
    for (int i = 0; i < 600 && !fs::exists(dir / "running.txt"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    write_file_atomic(
        dir / "cut-at.txt",
        std::to_string(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()));
    EXPECT_TRUE(hosts.unplug(1));
  });
  run_ranks(2, "UntilCut", dir.path(), place);
  cutter.join();
  const std::string msg = read_text_file(dir / "cut0.txt");
  EXPECT_NE(msg.find("no longer responding: 1"), std::string::npos) << msg;
  const double cut = std::stod(read_text_file(dir / "cut-at.txt"));
  const double failed = std::stod(msg.substr(msg.rfind("at ") + 3));
  // The timeout (10 s) and the heartbeat watch (up to 6 s) after it, with room for a loaded machine.
  EXPECT_LT(failed - cut, 10 + 6 + 8) << msg;
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
    if (r == 0) {
      EXPECT_NE(msg.find("rank(s) 1 differ from rank 0"), std::string::npos) << msg;
    } else {
      EXPECT_NE(msg.find("--lr is 0.02 on rank 1 and 0.01 on rank 0"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--model is \"deeplabv3_resnet50\" on rank 1 and \"deeplabv3_resnet101\" on rank 0"),
                std::string::npos)
          << msg;
      EXPECT_NE(msg.find("--log-interval is 5 on rank 1 and 10 on rank 0"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("--data"), std::string::npos) << msg;
    }
  }
}

TEST(Dist, RanksThatReadAnotherDataSetFailAtStart) {
  testing::TempDir dir;
  run_ranks(2, "DisagreeOnData", dir.path());
  const std::string rank0 = read_text_file(dir / "data0.txt"), rank1 = read_text_file(dir / "data1.txt");
  EXPECT_NE(rank0.find("ranks disagree on the data set (rank(s) 1 differ from rank 0"), std::string::npos) << rank0;
  EXPECT_NE(rank1.find("as layout voc, classes [background, aeroplane"), std::string::npos) << rank1;
  EXPECT_NE(rank1.find("rank 0 as layout oxford-pets, classes [pet, background, border]"), std::string::npos) << rank1;
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

// ---- the backend decision (a pure function: the GPU counts are passed, no GPU needed)

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// What the ranks report decides whether they share a GPU: two ranks on the one-GPU machine report the same UUID;
// Slurm's one visible GPU per rank (every LOCAL_RANK sees "its" GPU as cuda:0) reports distinct ones.
TEST(Backend, PlacementCountsRanksAndDistinctGpusOnTheNodeOfTheMostSharedGpu) {
  const GpuPlacement one_gpu = placement_of({"h200", "h200"}, {"uuid-a", "uuid-a"});
  EXPECT_EQ(one_gpu.local_ranks, 2);
  EXPECT_EQ(one_gpu.gpus, 1);
  const GpuPlacement slurm = placement_of({"n1", "n1", "n1", "n1"}, {"u0", "u1", "u2", "u3"});
  EXPECT_EQ(slurm.local_ranks, 4);
  EXPECT_EQ(slurm.gpus, 4);
  // Two nodes: node 1 is fine, node 2 runs 3 ranks on 2 GPUs; the decision looks at node 2.
  const GpuPlacement mixed = placement_of({"n1", "n1", "n2", "n2", "n2"}, {"a", "b", "c", "d", "c"});
  EXPECT_EQ(mixed.local_ranks, 3);
  EXPECT_EQ(mixed.gpus, 2);
  EXPECT_EQ(resolve_backend("auto", true, slurm.local_ranks, slurm.gpus, true).backend, "nccl");
  EXPECT_EQ(resolve_backend("auto", true, mixed.local_ranks, mixed.gpus, true).backend, "gloo");
}

TEST(Backend, AutoIsNcclOnlyWithCudaNcclAndAGpuPerLocalRank) {
  EXPECT_EQ(resolve_backend("auto", /*cuda=*/true, /*local_ranks=*/2, /*gpus=*/2, /*have_nccl=*/true).backend, "nccl");
  EXPECT_EQ(resolve_backend("auto", true, 1, 8, true).backend, "nccl");
  EXPECT_EQ(resolve_backend("auto", /*cuda=*/false, 2, 2, true).backend, "gloo");
  EXPECT_EQ(resolve_backend("auto", true, 2, 2, /*have_nccl=*/false).backend, "gloo");
  EXPECT_EQ(resolve_backend("auto", true, 2, 2, true).notice, "");
  EXPECT_EQ(resolve_backend("gloo", true, 2, 2, true).backend, "gloo");
  EXPECT_EQ(resolve_backend("nccl", true, 2, 2, true).backend, "nccl");
}

// Two ranks on a one-GPU machine: NCCL would refuse them at the first collective, so auto takes Gloo and says so.
TEST(Backend, AutoTakesGlooWhenLocalRanksOutnumberTheGpusAndSaysWhy) {
  const BackendChoice two_on_one = resolve_backend("auto", true, 2, 1, true);
  EXPECT_EQ(two_on_one.backend, "gloo");
  EXPECT_NE(two_on_one.notice.find("2 local ranks but 1 GPU; NCCL needs one GPU per rank"), std::string::npos)
      << two_on_one.notice;
  EXPECT_NE(two_on_one.notice.find("each GPU is shared by up to 2 ranks"), std::string::npos) << two_on_one.notice;
  EXPECT_EQ(two_on_one.notice.find('\n'), std::string::npos) << "one line";
  const BackendChoice five_on_two = resolve_backend("auto", true, 5, 2, true);
  EXPECT_EQ(five_on_two.backend, "gloo");
  EXPECT_NE(five_on_two.notice.find("5 local ranks but 2 GPUs;"), std::string::npos) << five_on_two.notice;
  EXPECT_NE(five_on_two.notice.find("shared by up to 3 ranks"), std::string::npos) << five_on_two.notice;
}

TEST(Backend, NcclWhereItCannotWorkIsRefusedSayingWhy) {
  EXPECT_EQ(error_of([] { resolve_backend("nccl", true, 2, 1, true); }),
            "--backend nccl: 2 local ranks but 1 GPU; NCCL needs one GPU per rank; use --backend gloo or fewer ranks");
  EXPECT_NE(error_of([] { resolve_backend("nccl", true, 3, 2, true); }).find("3 local ranks but 2 GPUs;"),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_backend("nccl", true, 1, 1, false); }).find("has no NCCL"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_backend("nccl", false, 1, 0, true); }).find("this machine has none"),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_backend("nccl", false, 1, 1, true); }).find("--device cpu"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_backend("mpi", true, 1, 1, true); }).find("valid: auto, gloo, nccl"),
            std::string::npos);
}

// What `petseg train --distributed --backend nccl` meets on a one-GPU machine with two local ranks, here on the CPU:
// make_c10d refuses before any rendezvous (nobody serves this port: a rendezvous would wait out the timeout).
TEST(Backend, MakeC10dRefusesNcclBeforeAnyRendezvous) {
  WorldInfo w;
  w.local_world_size = 2;
  w.master_port = free_port();
  DistOptions o;
  o.backend = "nccl";
  o.timeout = std::chrono::seconds(30);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = error_of([&] { make_c10d(w, o, /*cuda=*/true, /*gpus=*/1); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  EXPECT_NE(msg.find(kHaveNccl ? "2 local ranks but 1 GPU" : "has no NCCL"), std::string::npos) << msg;
}

// The same machine with --backend auto: the ranks meet over Gloo (a world of one here, on the CPU).
TEST(Backend, MakeC10dAutoUsesGlooWhenTheRanksWouldShareAGpu) {
  WorldInfo w;
  w.local_world_size = 2;
  w.master_port = free_port();
  DistOptions o;
  o.timeout = std::chrono::seconds(30);
  const auto comm = make_c10d(w, o, /*cuda=*/true, /*gpus=*/1);
  EXPECT_EQ(comm->backend(), "gloo");
  at::Tensor t = at::ones({3});
  comm->allreduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::ones({3})));
}

// ---- host syncs per step

// One process: the loss is read at log steps (every 4th and the epoch's last) and nowhere else; a signal stops at
// once (nobody to agree with).
TEST(StepSync, OneProcessReadsTheLossAtLogStepsOnly) {
  auto comm = make_single_process();
  StepSync sync(*comm, /*log_interval=*/4, /*steps_in_epoch=*/10);
  at::Tensor interval = at::zeros({});
  int64_t interval_steps = 0;
  std::vector<int64_t> read_at;
  for (int64_t step = 0; step < 10; ++step) {
    interval += 1.5;
    ++interval_steps;
    const int64_t before = comm->host_syncs();
    const StepSync::Outcome o = sync.after_step(step, interval, interval_steps, false, false);
    EXPECT_EQ(comm->host_syncs() - before, o.log ? 1 : 0) << "step " << step;
    EXPECT_FALSE(o.stop);
    if (o.log) {
      EXPECT_DOUBLE_EQ(o.mean_loss, 1.5) << "step " << step;
      read_at.push_back(step);
      interval.zero_();
      interval_steps = 0;
    }
  }
  EXPECT_EQ(read_at, (std::vector<int64_t>{3, 7, 9}));
  EXPECT_EQ(sync.next_log_step(0), 3);
  EXPECT_EQ(sync.next_log_step(3), 3);
  EXPECT_EQ(sync.next_log_step(4), 7);
  EXPECT_EQ(sync.next_log_step(8), 9);
  const StepSync::Outcome signalled = sync.after_step(5, at::full({}, 2.0), 1, false, /*signalled=*/true);
  EXPECT_TRUE(signalled.stop && signalled.log);
  const StepSync::Outcome limit = sync.after_step(1, at::full({}, 2.0), 1, /*limit_reached=*/true, false);
  EXPECT_TRUE(limit.stop && limit.log);
  EXPECT_DOUBLE_EQ(limit.mean_loss, 2.0);
}

// Two Gloo ranks run DDP steps (SyncBatchNorm, bucketed gradient all-reduce, StepSync: what the trainer's step runs)
// with a log interval of 3. The count is what the NCCL path blocks the host on (Communicator::host_syncs): it must
// be 0 in every step between log steps and 1 at a log step. Gloo's own collectives block the host by nature and are
// not counted: this shows that the step's code reads nothing back and declares no sync, not Gloo's cost. Rank 1
// alone is signalled after step 3: both ranks stop together at the next log step (step 5), with the same loss.
TEST(Dist, DdpStepsMakeNoHostSyncBetweenLogIntervals) {
  testing::TempDir dir;
  const auto results = run_ranks(2, "StepsWithoutHostSyncs", dir.path());
  std::array<std::string, 2> lines;
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(results[r].exit_code, 0) << "rank " << r << ":\n" << results[r].out;
    lines[r] = read_text_file(dir / ("steps" + std::to_string(r) + ".txt"));
  }
  const std::string expected =
      "step 0: 0 host syncs\n"
      "step 1: 0 host syncs\n"
      "step 2: 1 host syncs, log\n"
      "step 3: 0 host syncs\n"
      "step 4: 0 host syncs\n"
      "step 5: 1 host syncs, log, stop\n";
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(lines[r].substr(0, lines[r].find("losses")), expected) << "rank " << r << ":\n" << lines[r];
  }
  EXPECT_NE(lines[0].find("losses"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].substr(lines[0].find("losses")), lines[1].substr(lines[1].find("losses")))
      << "the ranks logged different losses";
}

}  // namespace
}  // namespace petseg::distributed
