// Local rank launcher: posix_spawn per rank, waitpid for all, signal forwarding.
#include "dist/launcher.h"

#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>

#include "core/check.h"
#include "core/log.h"

extern char** environ;

namespace petseg::dist {
namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void remember_signal(int sig) { g_forward_signal = sig; }

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  PETSEG_CHECK(fd >= 0, "cannot open a socket: ", errno_message(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  PETSEG_CHECK(ok, "cannot find a free port on 127.0.0.1");
  return ntohs(a.sin_port);
}

int launch_local(int nproc, const std::vector<std::string>& argv) {
  PETSEG_CHECK(nproc >= 1 && nproc <= 256, "--nproc-per-node must be in [1, 256], got ", nproc);
  const int port = free_port();
  std::map<pid_t, int> ranks;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (key == "RANK" || key == "LOCAL_RANK" || key == "WORLD_SIZE" || key == "LOCAL_WORLD_SIZE" ||
          key == "MASTER_ADDR" || key == "MASTER_PORT") {
        continue;
      }
      env.push_back(kv);
    }
    for (const auto& kv : {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                           "WORLD_SIZE=" + std::to_string(nproc), "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                           std::string("MASTER_ADDR=127.0.0.1"), "MASTER_PORT=" + std::to_string(port)}) {
      env.push_back(kv);
    }
    // Local ranks share the cores and each keeps at least 2 intra-op threads (see run_train): OpenMP threads must
    // then sleep, not spin, while they wait, or the ranks' spinning threads take each other's cores. libgomp reads
    // this once, at start, so it goes into the ranks' environment.
    if (!std::getenv("OMP_WAIT_POLICY")) env.push_back("OMP_WAIT_POLICY=PASSIVE");
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args.data(), envp.data());
    PETSEG_CHECK(rc == 0, "cannot start rank ", r, ": ", errno_message(rc));
    ranks[pid] = r;
  }
  log_info("launched ", nproc, " ranks on 127.0.0.1:", port);
  struct sigaction sa {};
  sa.sa_handler = remember_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int result = 0, forwarded = 0;
  while (!ranks.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (const int sig = g_forward_signal.exchange(0); sig && sig != forwarded) {
      for (const auto& [p, r] : ranks) ::kill(p, sig);  // each rank saves and stops after its current step
      forwarded = sig;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const int rank = ranks[pid];
    ranks.erase(pid);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && result == 0) {
      result = code;
      log_warning("rank ", rank, " exited with code ", code, WIFSIGNALED(status) ? " (killed by a signal)" : "",
                  ranks.empty() ? "" : "; stopping the other ranks");
      for (const auto& [p, r] : ranks) ::kill(p, SIGTERM);
    }
  }
  return result;
}

}  // namespace petseg::dist
