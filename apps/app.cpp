// The petseg app: its global options and every command.
#include <string>

#include "commands.h"

namespace petseg::cli {

Command declare_command(CLI::App* parent, Cmd cmd, const std::string& name, const std::string& help) {
  Command c;
  c.cmd = cmd;
  c.params = std::make_shared<Params>(defaults_for(cmd));
  c.app = parent->add_subcommand(name, help);
  add_options(c.app, cmd, *c.params);
  return c;
}

std::vector<Command> add_all_commands(CLI::App& app, GlobalOptions& global, int argc, char** argv) {
  app.set_version_flag("--version", std::string("petseg ") + PETSEG_VERSION);
  app.require_subcommand(1);
  app.failure_message(failure_message);
  app.add_option("--threads", global.threads, "Intra-op threads (0: one per core)")->capture_default_str();
  app.add_flag("-q,--quiet", global.quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", global.verbose, "Debug messages too");
  app.add_flag("--print-plan", global.print_plan,
               "Print what the command would run with (its options, as JSON) and exit without running it");
  std::vector<Command> commands = add_data_commands(app, global);
  for (auto&& group : {add_train_commands(app, global, argc, argv), add_bench_commands(app, global)}) {
    commands.insert(commands.end(), group.begin(), group.end());
  }
  return commands;
}

}  // namespace petseg::cli
