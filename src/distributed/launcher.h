// `--nproc-per-node N`: petseg starts its own local ranks (as torchrun would), forwards Ctrl-C/SIGTERM to them,
// stops the others when one fails (or cannot be started), and exits with the first failing rank's code.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace petseg::distributed {

// Starts rank `rank` as `argv` with environment `env` and returns its pid, or throws saying why it could not.
using SpawnRank =
    std::function<pid_t(int rank, const std::vector<std::string>& argv, const std::vector<std::string>& env)>;

// Runs `nproc` copies of `argv` (argv[0] = this program) with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// GROUP_RANK, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT. Returns 0 when all ranks succeed. `spawn` (empty: this
// program through posix_spawn) is what tests replace.
int launch_local(int nproc, const std::vector<std::string>& argv, const SpawnRank& spawn = {});

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice), for a local rendezvous.
int free_port();

}  // namespace petseg::distributed
