// `--nproc-per-node N`: petseg starts its own local ranks (as torchrun would), forwards Ctrl-C/SIGTERM to them,
// stops the others when one fails, and exits with the first failing rank's code.
#pragma once

#include <string>
#include <vector>

namespace petseg::dist {

// Runs `nproc` copies of `argv` (argv[0] = this program) with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1 and a free MASTER_PORT. Returns 0 when all ranks succeed.
int launch_local(int nproc, const std::vector<std::string>& argv);

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice), for a local rendezvous.
int free_port();

}  // namespace petseg::dist
