// petseg: the command line. main parses and runs the chosen command; each command lives with its options in
// apps/*_commands.cpp. See README.md.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli_options.h"
#include "commands.h"
#include "core/device.h"
#include "core/log.h"

using namespace petseg;
using namespace petseg::cli;

int main(int argc, char** argv) {
  CLI::App app{"petseg: DeepLabV3-ResNet101 transfer learning on the Oxford-IIIT Pet data set, in C++"};
  app.set_version_flag("--version", std::string("petseg ") + PETSEG_VERSION);
  app.require_subcommand(1);
  app.failure_message(failure_message);
  GlobalOptions global;
  app.add_option("--threads", global.threads, "Intra-op threads (0: one per core)")->capture_default_str();
  app.add_flag("-q,--quiet", global.quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", global.verbose, "Debug messages too");
  std::vector<Command> commands = add_data_commands(app);
  for (auto&& group : {add_train_commands(app, global, argc, argv), add_bench_commands(app, global)}) {
    commands.insert(commands.end(), group.begin(), group.end());
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // 2: usage error, as most command-line tools
  }
  try {
    if (global.quiet) set_log_level(LogLevel::kWarning);
    if (global.verbose) set_log_level(LogLevel::kDebug);
    configure_threads(global.threads);
    log_debug(runtime_summary());
    for (const Command& command : commands) {
      if (command.app->parsed()) return command.run();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petseg: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
