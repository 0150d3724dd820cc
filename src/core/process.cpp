// posix_spawn + a pipe: no shell, so paths with spaces or quotes pass through untouched.
#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "core/check.h"

extern char** environ;

namespace petseg {
namespace {

using Clock = std::chrono::steady_clock;

// Hands every complete line of `out` from `*done` on to `on_line`.
void emit_lines(const std::string& out, size_t* done, const ProcessOptions& options) {
  if (!options.on_line) return;
  for (size_t nl; (nl = out.find('\n', *done)) != std::string::npos; *done = nl + 1) {
    options.on_line(out.substr(*done, nl - *done));
  }
}

// Milliseconds poll() may wait before the next deadline (-1: none), or 0 when it has passed.
int wait_ms(Clock::time_point deadline, bool armed) {
  if (!armed) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? int(std::min<long long>(left, 1000 * 1000)) : 0;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  PETSEG_CHECK(!argv.empty(), "run_process needs a program");
  int fds[2];
  PETSEG_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "cannot create a pipe: ", errno_message(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    PETSEG_FAIL("cannot start ", argv[0], ": ", errno_message(rc));
  }
  ProcessResult result;
  size_t emitted = 0;
  const bool timed = options.timeout_s > 0;
  Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<long long>(options.timeout_s * 1000));
  int signal_sent = 0;  // 0, then SIGTERM, then SIGKILL
  char buf[4096];
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms(deadline, timed));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {  // a deadline passed: ask first, then insist
      // A grandchild may still hold the pipe after the child was killed: stop reading 5 s after SIGKILL.
      if (signal_sent == SIGKILL) break;
      signal_sent = signal_sent == 0 ? SIGTERM : SIGKILL;
      result.timed_out = true;
      ::kill(pid, signal_sent);
      deadline = Clock::now() + std::chrono::seconds(5);
      continue;
    }
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.out.append(buf, size_t(n));
    emit_lines(result.out, &emitted, options);
  }
  ::close(fds[0]);
  if (options.on_line && emitted < result.out.size()) options.on_line(result.out.substr(emitted));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace petseg
