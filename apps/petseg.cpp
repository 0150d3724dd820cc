// petseg: the command line. main parses and runs the chosen command; the options are declared once in
// apps/options.cpp, each command lives in apps/*_commands.cpp. See README.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "commands.h"
#include "core/device.h"
#include "core/log.h"

using namespace petseg;
using namespace petseg::cli;

int main(int argc, char** argv) {
  CLI::App app{
      "petseg: DeepLabV3-ResNet101 transfer learning on the Oxford-IIIT Pet data set (and your own data, with "
      "torchvision's segmentation models), in C++"};
  GlobalOptions global;
  const std::vector<Command> commands = add_all_commands(app, global, argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // 2: usage error, as most command-line tools
  }
  try {
    if (global.quiet) set_log_level(LogLevel::kWarning);
    if (global.verbose) set_log_level(LogLevel::kDebug);
    for (const Command& command : commands) {
      if (!command.app->parsed()) continue;
      if (global.print_plan) {
        std::cout << command.plan().dump(1) << "\n";
        return 0;
      }
      configure_threads(global.threads);
      log_debug(runtime_summary());
      return command.run();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petseg: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
