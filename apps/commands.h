// The commands of the petseg command line. Each command is declared with its options (apps/options.h), the options
// struct it hands to the library (its plan, as JSON) and its runner; main parses and runs the chosen one.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "options.h"

namespace petseg::cli {

struct GlobalOptions {
  int threads = 0;  // intra-op threads, 0: one per core
  bool quiet = false, verbose = false;
  bool print_plan = false;  // print the command's plan instead of running it
};

struct Command {
  Cmd cmd;
  CLI::App* app = nullptr;          // the (sub)command CLI11 parses
  std::shared_ptr<Params> params;   // what its options fill in
  std::function<nlohmann::json()> plan;  // the options struct it will run with, from params (no side effects)
  std::function<int()> run;              // returns the exit code
};

// A command `name` under `parent` with the options of `cmd` bound to a Params of its own.
Command declare_command(CLI::App* parent, Cmd cmd, const std::string& name, const std::string& help);

// synth, prepare, loader, data download (apps/data_commands.cpp)
std::vector<Command> add_data_commands(CLI::App& app, const GlobalOptions& global);
// train, eval, predict, export (apps/train_commands.cpp); train relaunches argv for --nproc-per-node
std::vector<Command> add_train_commands(CLI::App& app, const GlobalOptions& global, int argc, char** argv);
// bench data | model | ladder (apps/bench_commands.cpp)
std::vector<Command> add_bench_commands(CLI::App& app, const GlobalOptions& global);
// All of them, on the petseg app with its global options (--threads, -q, -v, --version).
std::vector<Command> add_all_commands(CLI::App& app, GlobalOptions& global, int argc, char** argv);

}  // namespace petseg::cli
