// The commands of the petseg command line. Each add_* function declares one command's options and returns its
// runner together with it; main parses and runs the chosen one.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace petseg::cli {

struct Command {
  CLI::App* app;             // the (sub)command CLI11 parsed
  std::function<int()> run;  // returns the exit code
};

struct GlobalOptions {
  int threads = 0;  // intra-op threads, 0: one per core
  bool quiet = false, verbose = false;
};

// synth, prepare, loader (apps/data_commands.cpp)
std::vector<Command> add_data_commands(CLI::App& app);
// train, eval, predict, export (apps/train_commands.cpp); train relaunches argv for --nproc-per-node
std::vector<Command> add_train_commands(CLI::App& app, const GlobalOptions& global, int argc, char** argv);
// bench data | model | ladder (apps/bench_commands.cpp)
std::vector<Command> add_bench_commands(CLI::App& app, const GlobalOptions& global);

}  // namespace petseg::cli
