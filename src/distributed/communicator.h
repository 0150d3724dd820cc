// One communicator interface (Flashlight's layering): a single-process implementation and a c10d one (Gloo on
// CPU, NCCL on CUDA where the libtorch has it) rendezvousing like torchrun does (its environment, read in one place:
// world_from_env; a c10d TCPStore, torchrun's own when its agent hosts one), so petseg starts under torchrun, Slurm
// or mpirun wrappers and spans machines. The rendezvous and every Gloo collective are bounded by the timeout (a
// failure names the rank(s) that stopped answering); NCCL collectives by ProcessGroupNCCL's watchdog.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/choices.h"

namespace petseg::distributed {

// Where this process stands in the job, as torchrun (or petseg --nproc-per-node, or a Slurm wrapper) says.
struct WorldInfo {
  int rank = 0;                           // RANK
  int world_size = 1;                     // WORLD_SIZE
  int local_rank = 0;                     // LOCAL_RANK: the GPU of this rank on its machine
  int local_world_size = 1;               // LOCAL_WORLD_SIZE: ranks on this machine (they split its cores)
  int group_rank = 0;                     // GROUP_RANK: the machine's (node's) rank
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR: where the TCPStore is
  int master_port = 29500;                // MASTER_PORT
  int restart_count = 0;                  // TORCHELASTIC_RESTART_COUNT: torchrun restarted the group this often
  std::string run_id;                     // TORCHELASTIC_RUN_ID
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store, every rank is
                             // a client of it (none starts its own)
  std::vector<std::string> gloo_interfaces;  // GLOO_SOCKET_IFNAME, comma-separated: Gloo binds to these
};

// Reads the torchrun environment; a missing or malformed variable is an error naming it.
WorldInfo world_from_env();
// "rank 1 of 4 (node 0, local 1 of 2), store 10.0.0.1:29500 (torchrun's agent), restart 1 of run r42" for logs.
std::string describe(const WorldInfo& world);

inline const Choices kBackendChoices = {"auto", "gloo", "nccl"};  // --backend

struct DistOptions {
  std::string backend = "auto";  // auto | gloo | nccl
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  // In place, summed over ranks (one collective: callers pack many tensors into one).
  virtual void allreduce_sum(at::Tensor& tensor) = 0;
  // Starts an in-place sum and returns the wait (which throws like allreduce_sum on failure).
  virtual std::function<void()> allreduce_sum_async(at::Tensor& tensor) = 0;
  // In place, from `root` to everyone.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  // A copy of `tensor` on the host, for reading a collective's result there. Under NCCL this is where the host waits
  // for the GPU, so a training loop does it at log intervals only. Counted in host_syncs().
  at::Tensor to_host(const at::Tensor& tensor);
  // How often this communicator made the host wait, as the NCCL path has it: to_host reads, and the blocking copies
  // of host tensors to and from the GPU that NCCL collectives need (NCCL work itself is waited for on the CUDA stream:
  // no host wait). Gloo's collectives are not counted: Gloo works on the host, so each of them blocks it by nature.
  // What a test reads to show that a DDP step makes no host sync between log intervals.
  int64_t host_syncs() const { return host_syncs_; }

 protected:
  void count_host_sync() { ++host_syncs_; }

 private:
  std::atomic<int64_t> host_syncs_{0};  // gradient hooks run collectives on autograd's threads
};

std::unique_ptr<Communicator> make_single_process();
// Whether this build can use NCCL (a CUDA libtorch built with it, and nccl.h found at build time).
#if PETSEG_WITH_NCCL
inline constexpr bool kHaveNccl = true;
#else
inline constexpr bool kHaveNccl = false;
#endif

struct BackendChoice {
  std::string backend;  // "gloo" or "nccl"
  std::string notice;   // one line for rank 0 when "auto" passed over NCCL for a reason the user should know
};
// The decision behind --backend, in one place. "auto" is NCCL when the run trains on CUDA (`cuda`), this build has
// NCCL (`have_nccl`) and each of this machine's `local_ranks` (LOCAL_WORLD_SIZE) has a GPU of its own among `gpus`;
// otherwise Gloo, with a notice when the ranks outnumber the GPUs (they share them: NCCL refuses two ranks on one
// GPU). "nccl" where it cannot work is an error saying why and what to do.
BackendChoice resolve_backend(const std::string& requested, bool cuda, int local_ranks, int gpus,
                              bool have_nccl = kHaveNccl);

// Where the ranks' GPUs are, as the ranks report them at the rendezvous: the node of each rank (its hostname) and the
// identity of its GPU (the device's UUID; a rank that sees one GPU through CUDA_VISIBLE_DEVICES, as Slurm binds
// them, reports that GPU's own UUID, so ranks share a GPU exactly when two report the same one).
struct GpuPlacement {
  int local_ranks = 1;  // on the node of the most shared GPU (any node when none is shared)
  int gpus = 1;         // distinct GPUs used on that node
};
GpuPlacement placement_of(const std::vector<std::string>& node_of_rank, const std::vector<std::string>& gpu_of_rank);

// A communicator for `world` over the backend resolve_backend chooses. What cannot work whatever the placement (NCCL
// in a build without it, or without CUDA) fails before any rendezvous; with `gpus` >= 0 (tests) the placement is
// LOCAL_WORLD_SIZE ranks on `gpus` GPUs and decided there too, otherwise the ranks report their GPUs through the
// store and every rank decides the same from what all reported.
std::unique_ptr<Communicator> make_c10d(const WorldInfo& world, const DistOptions& options, bool cuda = false,
                                        int gpus = -1);

// Every rank must pass the same `text` (a JSON of the run spec, say): otherwise all ranks fail at start. A rank whose
// text differs from rank 0's says how, with explain(rank 0's text); the others name the ranks that differ.
void check_same_on_all_ranks(Communicator& comm, const std::string& what, const std::string& text,
                             const std::function<std::string(const std::string& rank0_text)>& explain);

}  // namespace petseg::distributed
