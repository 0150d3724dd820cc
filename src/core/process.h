// Child processes without a shell: run a program with arguments and capture its standard output.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace petseg {

struct ProcessResult {
  int exit_code = -1;      // 128 + signal when killed by a signal
  std::string out;         // standard output (standard error passes through)
  bool timed_out = false;  // stopped by ProcessOptions::timeout_s
};

struct ProcessOptions {
  // Each complete line of standard output (without its newline) as it arrives, and a last unterminated one at exit:
  // a caller keeps what a long child reported even when the child is stopped later.
  std::function<void(const std::string&)> on_line;
  // > 0: the child is sent SIGTERM after this many seconds, and SIGKILL 5 s later if it is still there.
  double timeout_s = 0;
};

// Runs argv[0] (looked up in PATH when it has no '/') and waits for it. Throws only if it cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

}  // namespace petseg
