// Child processes without a shell: run a program with arguments and capture its standard output.
#pragma once

#include <string>
#include <vector>

namespace petseg {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;     // standard output (standard error passes through)
};

// Runs argv[0] (looked up in PATH when it has no '/') and waits for it. Throws only if it cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace petseg
