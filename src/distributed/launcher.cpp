// Local rank launcher: one process per rank, waitpid for all, signal forwarding, and no orphans: ranks already
// started are stopped when a later one cannot start or one fails.
#include "distributed/launcher.h"

#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "core/check.h"
#include "core/log.h"

extern char** environ;

namespace petseg::distributed {
namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void remember_signal(int sig) { g_forward_signal = sig; }

// This program, as posix_spawn starts it.
pid_t spawn_self(int rank, const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args.data(), envp.data());
  PETSEG_CHECK(rc == 0, "cannot start rank ", rank, ": ", errno_message(rc));
  return pid;
}

// The environment of rank `r`: this process's, with the torchrun variables set for a one-machine world.
std::vector<std::string> rank_environment(int r, int nproc, int port) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (key == "RANK" || key == "LOCAL_RANK" || key == "WORLD_SIZE" || key == "LOCAL_WORLD_SIZE" ||
        key == "GROUP_RANK" || key == "MASTER_ADDR" || key == "MASTER_PORT" || key.rfind("TORCHELASTIC_", 0) == 0) {
      continue;
    }
    env.push_back(kv);
  }
  for (const auto& kv : {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                         "WORLD_SIZE=" + std::to_string(nproc), "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                         std::string("GROUP_RANK=0"), std::string("MASTER_ADDR=127.0.0.1"),
                         "MASTER_PORT=" + std::to_string(port)}) {
    env.push_back(kv);
  }
  // Local ranks share the cores with each other and with their loader threads: OpenMP threads must sleep, not
  // spin, while they wait, or spinning threads take the cores the others need. libgomp reads this once, at
  // start, so it goes into the ranks' environment.
  if (!std::getenv("OMP_WAIT_POLICY")) env.push_back("OMP_WAIT_POLICY=PASSIVE");
  return env;
}

// SIGTERM to every rank still running, SIGKILL to those still there after `grace`; all are reaped.
void stop_ranks(std::map<pid_t, int>& ranks, std::chrono::seconds grace) {
  for (const auto& [pid, r] : ranks) ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!ranks.empty() && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      ranks.erase(pid);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  for (const auto& [pid, r] : ranks) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  ranks.clear();
}

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

int launch_local(int nproc, const std::vector<std::string>& argv, const SpawnRank& spawn) {
  PETSEG_CHECK(nproc >= 1 && nproc <= 256, "--nproc-per-node must be in [1, 256], got ", nproc);
  const SpawnRank start = spawn ? spawn : spawn_self;
  const int port = free_port();
  std::map<pid_t, int> ranks;
  for (int r = 0; r < nproc; ++r) {
    try {
      ranks[start(r, argv, rank_environment(r, nproc, port))] = r;
    } catch (const std::exception& e) {
      const size_t started = ranks.size();
      stop_ranks(ranks, std::chrono::seconds(10));
      PETSEG_FAIL(e.what(), started ? detail::str_cat("; stopped the ", started, " rank(s) already started") : "");
    }
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
      for (const auto& [p, r] : ranks) ::kill(p, sig);  // the ranks stop together at their next log step, and save
      forwarded = sig;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto it = ranks.find(pid);
    if (it == ranks.end()) continue;  // not one of ours
    const int rank = it->second;
    ranks.erase(it);
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

}  // namespace petseg::distributed
