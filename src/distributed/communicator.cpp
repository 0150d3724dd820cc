// c10d plumbing on libtorch 2.x: the Gloo and NCCL process groups are c10d::Backend implementations, driven through
// a TCPStore rendezvous; work handles are `auto` so the file follows c10d's Work type wherever it moves.
#include "distributed/communicator.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if PETSEG_WITH_NCCL
#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <atomic>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "core/device.h"
#include "core/log.h"

namespace petseg::distributed {
namespace {

using ProcessGroupBase = c10d::Backend;

int env_int(const char* name, int fallback, bool required) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    PETSEG_CHECK(!required, "distributed training needs the environment variable ", name,
                 " (set by torchrun, or by petseg --nproc-per-node)");
    return fallback;
  }
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  PETSEG_CHECK(end && *end == '\0' && x >= 0 && x < (1 << 30), "environment variable ", name, "=\"", v,
               "\" is not a non-negative integer");
  return int(x);
}

// The store the process group rendezvouses through. Gloo's full-mesh connect waits for its peers' addresses with
// c10d's default timeout (5 minutes) whatever the group's timeout: every wait here is capped at the run's timeout,
// so a rendezvous that cannot complete fails within --dist-timeout.
class BoundedStore final : public c10d::PrefixStore {
 public:
  BoundedStore(std::string prefix, c10::intrusive_ptr<c10d::Store> store, std::chrono::milliseconds bound)
      : c10d::PrefixStore(std::move(prefix), std::move(store)), bound_(bound) {}
  void wait(const std::vector<std::string>& keys) override { wait(keys, bound_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    c10d::PrefixStore::wait(keys, std::min(timeout, bound_));
  }

 private:
  std::chrono::milliseconds bound_;
};

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

// The local address this machine uses to reach `host`: the one the peers can reach it at, where the hostname may
// resolve to loopback (Debian's 127.0.1.1) or to an address on another network. Empty when there is no route.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found) return "";
  std::string result;
  for (addrinfo* a = found; a && result.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    // A UDP "connect" sends nothing: it only picks the route and with it the source address.
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* addr = local.ss_family == AF_INET
                             ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr)
                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr);
      if (::inet_ntop(local.ss_family, addr, text, sizeof(text))) result = text;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return result;
}

// The Gloo transport devices: GLOO_SOCKET_IFNAME's interfaces (one context each, as PyTorch does), else loopback
// for a one-machine job, else the address that routes to the store's host.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(const WorldInfo& w) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  for (const std::string& iface : w.gloo_interfaces) {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
  }
  if (!devices.empty()) return devices;
  if (is_loopback(w.master_addr)) {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    return devices;
  }
  const std::string local = local_address_towards(w.master_addr, w.master_port);
  if (!local.empty() && !is_loopback(local)) {
    log_info("rank ", w.rank, ": Gloo binds ", local, " (the address that routes to ", w.master_addr,
             "; set GLOO_SOCKET_IFNAME to choose an interface)");
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local));
  } else {
    devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return devices;
}

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "none"; }
  void allreduce_sum(at::Tensor&) override {}
  std::function<void()> allreduce_sum_async(at::Tensor&) override {
    return [] {};
  }
  void broadcast(at::Tensor&, int) override {}
  void barrier() override {}
};

// The UUID of `device` (a CUDA device), as a hex string; empty where this build has no CUDA.
std::string gpu_identity(const at::Device& device) {
#if PETSEG_WITH_NCCL
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(device.index());
  static const char* kHex = "0123456789abcdef";
  std::string id;
  for (char c : p->uuid.bytes) id += {kHex[(uint8_t(c) >> 4) & 15], kHex[uint8_t(c) & 15]};
  return id;
#else
  return "";
#endif
}

class C10d final : public Communicator {
 public:
  // `decided`: the backend when it was decided before the rendezvous; otherwise `requested` is resolved here from
  // where the ranks' GPUs are.
  C10d(const WorldInfo& w, const DistOptions& o, bool cuda, std::optional<std::string> decided)
      : world_(w), timeout_(o.timeout) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(w.master_port);
    so.isServer = w.rank == 0 && !w.agent_store;  // under torchrun's agent store every rank is a client
    so.numWorkers = w.world_size;
    so.waitWorkers = true;  // clients check in (the server waits for all of them), as Python's TCPStore does
    so.timeout = o.timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(w.master_addr, so);
    } catch (const std::exception& e) {
      PETSEG_FAIL("rank ", w.rank, ": rendezvous at ", w.master_addr, ":", w.master_port, " with ", w.world_size,
                  " ranks failed (", first_line(e.what()), ")");
    }
    if (decided) {
      backend_ = *decided;
    } else {
      const GpuPlacement where = placement(cuda);
      const BackendChoice choice = resolve_backend(o.backend, cuda, where.local_ranks, where.gpus);
      if (!choice.notice.empty() && w.rank == 0) log_warning(choice.notice);
      backend_ = choice.backend;
    }
    if (backend_ == "nccl") {
      // One GPU per rank (checked above): the device the trainer made current, chosen by the same function (a rank
      // seeing one GPU, as Slurm binds them, takes that one). NCCL collectives take CUDA tensors only.
      device_ = resolve_device("cuda", w.local_rank);
      set_current_device(device_);
    }
    try {
      const auto group_store = c10::make_intrusive<BoundedStore>(key_prefix_ + "group", store_, o.timeout);
      if (backend_ == "nccl") {
#if PETSEG_WITH_NCCL
        auto opts = c10d::ProcessGroupNCCL::Options::create();
        opts->timeout = o.timeout;  // the watchdog's bound on every collective: run() waits on the stream only
        pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(group_store, w.rank, w.world_size, opts);
#endif
      } else {
        auto opts = c10d::ProcessGroupGloo::Options::create(o.timeout);
        opts->devices = gloo_devices(w);
        pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(group_store, w.rank, w.world_size, opts);
      }
    } catch (const std::exception& e) {
      PETSEG_FAIL("rank ", w.rank, ": rendezvous at ", w.master_addr, ":", w.master_port, " with ", w.world_size,
                  " ranks failed (", first_line(e.what()), ")");
    }
    // Heartbeats in the store, so a failed collective can say which rank stopped.
    heartbeat_ = std::thread([this] {
      while (!stop_) {
        try {
          const auto now =
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
                  .count();
          beat_store()->set(key_prefix_ + "heartbeat/" + std::to_string(world_.rank), to_bytes(std::to_string(now)));
        } catch (...) {
        }
        for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  ~C10d() override {
    stop_ = true;
    if (heartbeat_.joinable()) heartbeat_.join();
  }
  int rank() const override { return world_.rank; }
  int world_size() const override { return world_.world_size; }
  std::string backend() const override { return backend_; }

  void allreduce_sum(at::Tensor& tensor) override {
    std::vector<at::Tensor> list = {on_backend_device(tensor)};
    run("allreduce", [&] { return pg_->allreduce(list); });
    copy_back(tensor, list[0]);
  }
  std::function<void()> allreduce_sum_async(at::Tensor& tensor) override {
    std::vector<at::Tensor> list = {on_backend_device(tensor)};
    decltype(pg_->allreduce(list)) work;
    try {
      work = pg_->allreduce(list);
    } catch (const std::exception& e) {
      fail("allreduce", e);
    }
    return [this, work, result = list[0], tensor]() mutable {
      run("allreduce", [&] { return work; });
      copy_back(tensor, result);
    };
  }
  void broadcast(at::Tensor& tensor, int root) override {
    std::vector<at::Tensor> list = {on_backend_device(tensor)};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    run("broadcast", [&] { return pg_->broadcast(list, bo); });
    copy_back(tensor, list[0]);
  }
  void barrier() override {
    at::Tensor one = at::zeros({1});
    allreduce_sum(one);
  }

 private:
  // NCCL only takes CUDA tensors: host tensors (flags, confusion matrices) travel through the rank's GPU, each way a
  // blocking copy (a host sync), so the training step hands its collectives device tensors only.
  at::Tensor on_backend_device(const at::Tensor& t) {
    if (!device_.is_cuda() || t.is_cuda()) return t;
    count_host_sync();
    return t.to(device_);
  }
  void copy_back(at::Tensor& tensor, const at::Tensor& result) {
    if (result.is_same(tensor)) return;
    if (result.device() != tensor.device()) count_host_sync();
    tensor.copy_(result);
  }
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
  // Every rank reports its node and its GPU through the store and reads everyone's: all ranks compute the same
  // placement. Without CUDA training (or NCCL in this build) there is nothing to decide: one rank, one GPU.
  const GpuPlacement& placement(bool cuda) {
    if (!cuda || !kHaveNccl || world_.world_size == 1) return placement_;
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const std::string key = key_prefix_ + "placement/";
    store_->set(key + std::to_string(world_.rank),
                to_bytes(std::string(host) + "\n" + gpu_identity(resolve_device("cuda", world_.local_rank))));
    std::vector<std::string> nodes, gpus;
    for (int r = 0; r < world_.world_size; ++r) {
      const std::vector<uint8_t> v = store_->get(key + std::to_string(r));  // waits up to the store's timeout
      const std::string text(v.begin(), v.end());
      nodes.push_back(text.substr(0, text.find('\n')));
      gpus.push_back(text.substr(text.find('\n') + 1));
    }
    placement_ = placement_of(nodes, gpus);
    return placement_;
  }
  static std::vector<uint8_t> to_bytes(const std::string& s) { return {s.begin(), s.end()}; }
  // A second client connection for heartbeats, so they never interleave with the process group's store use.
  c10::intrusive_ptr<c10d::TCPStore> beat_store() {
    if (!beat_store_) {
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(world_.master_port);
      so.isServer = false;
      so.waitWorkers = false;
      so.timeout = std::chrono::seconds(5);
      beat_store_ = c10::make_intrusive<c10d::TCPStore>(world_.master_addr, so);
    }
    return beat_store_;
  }
  // Ranks whose heartbeat stops moving (each rank rewrites its own every 1 s; comparing values, not clocks, works
  // across machines), or the master if its store no longer answers. A peer that just died may have beaten a moment
  // ago: watch for up to ~6 s before saying that nobody is silent.
  std::string silent_ranks() {
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(world_.master_port);
      so.waitWorkers = false;
      so.timeout = std::chrono::seconds(3);
      c10d::TCPStore probe(world_.master_addr, so);
      auto beats = [&] {
        std::vector<std::string> v(size_t(world_.world_size));
        for (int r = 0; r < world_.world_size; ++r) {
          const std::string key = key_prefix_ + "heartbeat/" + std::to_string(r);
          if (probe.check({key})) {
            const auto b = probe.get(key);
            v[size_t(r)].assign(b.begin(), b.end());
          }
        }
        return v;
      };
      const std::vector<std::string> first = beats();
      std::string silent;
      for (int wait = 0; wait < 4 && silent.empty(); ++wait) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        const std::vector<std::string> now = beats();
        for (int r = 0; r < world_.world_size; ++r) {
          if (r != world_.rank && now[size_t(r)] == first[size_t(r)] && wait >= 1) {
            silent += (silent.empty() ? "" : ", ") + std::to_string(r);
          }
        }
      }
      return silent.empty() ? "none found (every rank still beats: one may be stuck, or slower than --dist-timeout)"
                            : silent;
    } catch (...) {
      return "0 (the rendezvous host; its store no longer answers)";
    }
  }
  [[noreturn]] void fail(const char* what, const std::exception& e) {
    PETSEG_FAIL("rank ", world_.rank, ": ", what, " across ", world_.world_size, " ranks failed (",
                first_line(e.what()), "); rank(s) no longer responding: ", silent_ranks());
  }
  // Gloo's wait is bounded by the timeout (Gloo works on the host: its waits block it anyway). NCCL's is not: in
  // PyTorch's WorkNCCL a wait with a timeout spins the host until the collective ends, where wait() without one only
  // makes the current CUDA stream wait for it; ProcessGroupNCCL's watchdog bounds it by --dist-timeout instead.
  template <class Fn>
  void run(const char* what, Fn&& fn) {
    try {
      auto work = fn();
      if (backend_ == "nccl") {
        work->wait();
      } else {
        work->wait(timeout_);
      }
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  WorldInfo world_;
  // torchrun's agent keeps its store across restarts of the group: each attempt's keys (the process group's
  // addresses, the heartbeats) live apart, or a restarted rank would read its peers' addresses from before.
  std::string key_prefix_ = "petseg/attempt_" + std::to_string(world_.restart_count) + "/";
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::TCPStore> store_, beat_store_;
  std::string backend_;
  GpuPlacement placement_;
  at::Device device_ = at::kCPU;  // where collectives run: the rank's GPU under NCCL
  c10::intrusive_ptr<ProcessGroupBase> pg_;
  std::atomic<bool> stop_{false};
  std::thread heartbeat_;
};

}  // namespace

WorldInfo world_from_env() {
  WorldInfo w;
  w.world_size = env_int("WORLD_SIZE", 1, /*required=*/true);
  w.rank = env_int("RANK", 0, /*required=*/true);
  w.local_rank = env_int("LOCAL_RANK", w.rank, false);
  w.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, false);
  w.group_rank = env_int("GROUP_RANK", 0, false);
  w.master_port = env_int("MASTER_PORT", 29500, false);
  w.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, false);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) w.master_addr = a;
  if (const char* id = std::getenv("TORCHELASTIC_RUN_ID"); id && *id) w.run_id = id;
  if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) w.agent_store = std::string(agent) == "True";
  if (const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME")) {
    std::stringstream in(ifnames);
    for (std::string iface; std::getline(in, iface, ',');) {
      if (!iface.empty()) w.gloo_interfaces.push_back(iface);
    }
  }
  PETSEG_CHECK(w.world_size >= 1 && w.rank < w.world_size, "RANK=", w.rank, " is outside WORLD_SIZE=", w.world_size);
  PETSEG_CHECK(w.local_world_size >= 1, "LOCAL_WORLD_SIZE=", w.local_world_size, " must be >= 1");
  PETSEG_CHECK(w.master_port > 0 && w.master_port < 65536, "MASTER_PORT=", w.master_port, " is not a port");
  return w;
}

std::string describe(const WorldInfo& w) {
  return detail::str_cat(
      "rank ", w.rank, " of ", w.world_size, " (node ", w.group_rank, ", local ", w.local_rank, " of ",
      w.local_world_size, "), store ", w.master_addr, ":", w.master_port, w.agent_store ? " (torchrun's agent)" : "",
      w.restart_count || !w.run_id.empty()
          ? detail::str_cat(", restart ", w.restart_count, w.run_id.empty() ? "" : " of run ", w.run_id)
          : "",
      w.gloo_interfaces.empty() ? "" : ", Gloo on " + w.gloo_interfaces.front() + "...");
}

at::Tensor Communicator::to_host(const at::Tensor& tensor) {
  count_host_sync();
  return tensor.to(at::kCPU);
}

std::unique_ptr<Communicator> make_single_process() { return std::make_unique<SingleProcess>(); }

BackendChoice resolve_backend(const std::string& requested, bool cuda, int local_ranks, int gpus, bool have_nccl) {
  check_choice("--backend", requested, kBackendChoices);
  const auto gpu_count = [&] { return detail::str_cat(gpus, gpus == 1 ? " GPU" : " GPUs"); };
  const bool gpu_per_rank = local_ranks <= gpus;
  if (requested == "auto") {
    if (!cuda || !have_nccl) return {"gloo", ""};
    if (gpu_per_rank) return {"nccl", ""};
    const int share = gpus > 0 ? (local_ranks + gpus - 1) / gpus : local_ranks;
    return {"gloo", detail::str_cat("--backend auto: ", local_ranks, " local ranks but ", gpu_count(),
                                    "; NCCL needs one GPU per rank, so the ranks use Gloo and each GPU is shared by",
                                    " up to ", share, " ranks (start at most ", gpus, " ranks per machine for NCCL)")};
  }
  if (requested == "nccl") {
    PETSEG_CHECK(have_nccl,
                 "--backend nccl: this libtorch build has no NCCL (it is CPU-only or was built without it); use gloo");
    PETSEG_CHECK(cuda || gpus > 0, "--backend nccl needs CUDA devices; this machine has none; use gloo");
    PETSEG_CHECK(cuda, "--backend nccl needs the run on CUDA and it trains on the CPU (--device cpu); use ",
                 "--backend gloo or --device cuda");
    PETSEG_CHECK(gpu_per_rank, "--backend nccl: ", local_ranks, " local ranks but ", gpu_count(),
                 "; NCCL needs one GPU per rank; use --backend gloo or fewer ranks");
  }
  return {requested, ""};
}

GpuPlacement placement_of(const std::vector<std::string>& node_of_rank, const std::vector<std::string>& gpu_of_rank) {
  PETSEG_CHECK(node_of_rank.size() == gpu_of_rank.size() && !node_of_rank.empty(),
               "placement: one node and GPU per rank");
  std::map<std::string, int> ranks_on_gpu;
  for (const auto& g : gpu_of_rank) ++ranks_on_gpu[g];
  size_t busiest = 0;
  for (size_t r = 0; r < gpu_of_rank.size(); ++r) {
    if (ranks_on_gpu[gpu_of_rank[r]] > ranks_on_gpu[gpu_of_rank[busiest]]) busiest = r;
  }
  GpuPlacement p{0, 0};
  std::map<std::string, int> seen;
  for (size_t r = 0; r < node_of_rank.size(); ++r) {
    if (node_of_rank[r] != node_of_rank[busiest]) continue;
    ++p.local_ranks;
    if (seen[gpu_of_rank[r]]++ == 0) ++p.gpus;
  }
  return p;
}

std::unique_ptr<Communicator> make_c10d(const WorldInfo& world, const DistOptions& options, bool cuda, int gpus) {
  if (gpus >= 0) {  // the placement given: decided before the rendezvous
    const BackendChoice choice = resolve_backend(options.backend, cuda, world.local_world_size, gpus);
    if (!choice.notice.empty() && world.rank == 0) log_warning(choice.notice);
    return std::make_unique<C10d>(world, options, cuda, choice.backend);
  }
  // What no placement can fix fails before the rendezvous (one rank per GPU is the placement least likely to refuse).
  const int visible = cuda_device_count();
  resolve_backend(options.backend, cuda, std::max(1, visible), std::max(1, visible));
  PETSEG_CHECK(options.backend != "nccl" || visible > 0,
               "--backend nccl needs CUDA devices; this machine has none; "
               "use gloo");
  return std::make_unique<C10d>(world, options, cuda, std::nullopt);
}

void check_same_on_all_ranks(Communicator& comm, const std::string& what, const std::string& text,
                             const std::function<std::string(const std::string& rank0_text)>& explain) {
  // Rank 0's text to every rank (its length, then its bytes, one per int64: every backend reduces those), then an
  // all-reduce of per-rank mismatch flags so every rank learns who differs.
  at::Tensor length = at::full({1}, int64_t(text.size()), at::kLong);
  comm.broadcast(length, 0);
  const int64_t n = length.item<int64_t>();
  at::Tensor bytes = at::zeros({std::max<int64_t>(n, 1)}, at::kLong);
  if (comm.rank() == 0) {
    for (int64_t i = 0; i < n; ++i) bytes.data_ptr<int64_t>()[i] = static_cast<unsigned char>(text[size_t(i)]);
  }
  comm.broadcast(bytes, 0);
  std::string root(size_t(n), ' ');
  for (int64_t i = 0; i < n; ++i) root[size_t(i)] = static_cast<char>(bytes.data_ptr<int64_t>()[i]);
  const bool same = root == text;
  at::Tensor flags = at::zeros({comm.world_size()}, at::kLong);
  flags[comm.rank()] = same ? 0 : 1;
  comm.allreduce_sum(flags);
  std::string differ;
  for (int r = 0; r < comm.world_size(); ++r) {
    if (flags[r].item<int64_t>()) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  }
  if (differ.empty()) return;
  PETSEG_CHECK(same, "rank ", comm.rank(), ": ranks disagree on ", what, ": ", explain(root),
               "; start every rank with the same options");
  PETSEG_FAIL("rank ", comm.rank(), ": ranks disagree on ", what, " (rank(s) ", differ,
              " differ from rank 0; their messages name each option); start every rank with the same options");
}

}  // namespace petseg::distributed
