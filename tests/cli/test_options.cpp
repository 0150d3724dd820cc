// The command line's option table: each option declared once, every command's --help shows each of its options once
// with the default its struct gives, no command accepts an option it ignores (each one changes the command's plan),
// and the run-spec options are named as a resume and the ranks' agreement name them.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "commands.h"
#include "options.h"
#include "train/config.h"

namespace petseg::cli {
namespace {

// The words that select `cmd` ("bench", "model").
std::vector<std::string> command_words(Cmd cmd) { return CLI::detail::split(command_name(cmd), ' '); }

// A fresh app with every command, parsed from `args` (after "petseg"); returns the chosen command's plan.
nlohmann::json plan_of(Cmd cmd, const std::vector<std::string>& args) {
  CLI::App app;
  GlobalOptions global;
  std::vector<Command> commands = add_all_commands(app, global, 0, nullptr);
  std::vector<std::string> words = {"petseg"};
  for (const auto& w : command_words(cmd)) words.push_back(w);
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  app.parse(int(argv.size()), argv.data());
  for (const Command& c : commands) {
    if (c.cmd == cmd) return c.plan();
  }
  ADD_FAILURE() << "no command " << command_name(cmd);
  return {};
}

// The arguments `cmd` needs to parse at all: each required option with a probe value.
std::vector<std::string> required_args(Cmd cmd) {
  const Params defaults = defaults_for(cmd);
  std::vector<std::string> args;
  for (const OptionDecl& d : option_table()) {
    if (!(d.required & cmd)) continue;
    for (const auto& a : d.probe(defaults)) args.push_back(a);
  }
  return args;
}

std::string help_of(Cmd cmd) {
  CLI::App app;
  GlobalOptions global;
  const std::vector<Command> commands = add_all_commands(app, global, 0, nullptr);
  for (const Command& c : commands) {
    if (c.cmd == cmd) return c.app->help();
  }
  return "";
}

TEST(Options, EachSpellingIsDeclaredOnce) {
  std::map<std::string, std::string> owner;
  for (const OptionDecl& d : option_table()) {
    for (std::string name : CLI::detail::split(all_spellings(d.names), ',')) {
      if (name[0] == '!') name = name.substr(1);
      const auto [it, fresh] = owner.emplace(name, d.names);
      EXPECT_TRUE(fresh) << name << " is declared by both \"" << it->second << "\" and \"" << d.names << "\"";
    }
    EXPECT_NE(d.commands, 0u) << d.names << " is taken by no command";
    EXPECT_EQ(d.required & ~d.commands, 0u) << d.names << " is required where it is not taken";
  }
  // The original's snake_case spellings are there.
  EXPECT_TRUE(owner.count("--num_workers") && owner.count("--pin_memory") && owner.count("--torch_script") &&
              owner.count("--data_parallel") && owner.count("--batch_size"));
}

// How many help lines start with `name` (followed by a space, a comma or CLI11's "{false}" of a negated flag).
int lines_starting_with(const std::string& help, const std::string& name) {
  int n = 0;
  for (size_t at = help.find("  " + name); at != std::string::npos; at = help.find("  " + name, at + 1)) {
    const char next = help[at + 2 + name.size()];
    n += next == ' ' || next == ',' || next == '{' || next == '\n';
  }
  return n;
}

// --help lists each option of the command once, with the default of the command's Params.
TEST(Options, HelpShowsEachOptionOnceWithItsStructsDefault) {
  for (const Cmd cmd : all_commands()) {
    const std::string help = help_of(cmd);
    for (const OptionDecl& d : option_table()) {
      const std::string first = CLI::detail::split(d.names, ',').front();
      const std::string name = first[0] == '!' ? first.substr(1) : first;
      EXPECT_EQ(lines_starting_with(help, name), (d.commands & cmd) ? 1 : 0)
          << command_name(cmd) << " --help and " << name << ":\n"
          << help;
    }
  }
  // The defaults are the structs', per command.
  EXPECT_NE(help_of(kTrain).find("--num-workers,--num_workers INT=2"), std::string::npos);
  EXPECT_NE(help_of(kTrain).find("--epochs INT=3"), std::string::npos);
  EXPECT_NE(help_of(kTrain).find("--lr FLOAT=0.01"), std::string::npos);
  EXPECT_NE(help_of(kBenchData).find("--batch-size,--batch_size INT=16"), std::string::npos);
  EXPECT_NE(help_of(kBenchLadder).find("--num-workers,--num_workers INT=8"), std::string::npos);
  EXPECT_NE(help_of(kExport).find("--image-size,--image_size INT=520"), std::string::npos);
  EXPECT_NE(help_of(kTrain).find("Page-locked"), std::string::npos);
  EXPECT_NE(help_of(kTrain).find("(default: on)"), std::string::npos) << "--pin-memory's default";
}

// Every option a command accepts changes what it runs with: none is accepted and ignored.
TEST(Options, NoCommandAcceptsAnOptionItIgnores) {
  for (const Cmd cmd : all_commands()) {
    const std::vector<std::string> base = required_args(cmd);
    const nlohmann::json plain = plan_of(cmd, base);
    for (const OptionDecl& d : option_table()) {
      if (!(d.commands & cmd)) continue;
      std::vector<std::string> args = base;
      const std::vector<std::string> probe = d.probe(defaults_for(cmd));
      if (d.required & cmd) {  // replace its value in the base arguments
        const auto at = std::find(args.begin(), args.end(), probe[0]);
        ASSERT_NE(at, args.end());
        *(at + 1) = *(at + 1) + "-2";
      } else {
        args.insert(args.end(), probe.begin(), probe.end());
      }
      nlohmann::json probed;
      try {
        probed = plan_of(cmd, args);
      } catch (const std::exception& e) {
        ADD_FAILURE() << command_name(cmd) << " " << CLI::detail::join(args, " ") << ": " << e.what();
        continue;
      }
      EXPECT_NE(probed, plain) << command_name(cmd) << " accepts " << CLI::detail::join(probe, " ")
                               << " and runs the same without it";
    }
  }
}

// Every run-spec key is the name of exactly one option train takes (what a refused resume and the ranks' agreement
// print), and that option sets that field: naming it changes the key's value in train's plan.
TEST(Options, SpecKeysAreTheirOptionsNames) {
  std::map<std::string, int> options_of_key;
  for (const OptionDecl& d : option_table()) {
    const std::string key = spec_key_of(d);
    if (key.empty()) continue;
    ++options_of_key[key];
    EXPECT_TRUE(d.commands & kTrain) << d.names << " sets the run spec but train does not take it";
    const Params defaults = defaults_for(kTrain);
    Params probed = defaults;
    CLI::App app;
    add_options(&app, kTrain, probed);
    std::vector<std::string> words = d.probe(defaults);
    std::vector<std::string> argv = {"petseg"};
    argv.insert(argv.end(), words.begin(), words.end());
    std::vector<char*> args;
    for (auto& w : argv) args.push_back(w.data());
    app.parse(int(args.size()), args.data());
    const nlohmann::json before = nlohmann::json::parse(train::to_json(defaults.train))["spec"];
    const nlohmann::json after = nlohmann::json::parse(train::to_json(probed.train))["spec"];
    EXPECT_NE(before[key], after[key]) << d.names << " does not set the spec's \"" << key << "\"";
  }
  for (const std::string& key : train::spec_keys()) EXPECT_EQ(options_of_key[key], 1) << key;
  EXPECT_EQ(options_of_key.size(), train::spec_keys().size());
}

// A resume compares only the spec options the command line named, in either spelling.
TEST(Options, GivenSpecKeysAreTheNamedOnes) {
  CLI::App app;
  GlobalOptions global;
  std::vector<Command> commands = add_all_commands(app, global, 0, nullptr);
  std::vector<std::string> words = {"petseg",        "train", "--lr",         "0.1",      "--batch_size",
                                    "4",             "--num-workers", "7", "--resume", "runs/x"};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  app.parse(int(argv.size()), argv.data());
  for (const Command& c : commands) {
    if (c.cmd != kTrain) continue;
    EXPECT_EQ(given_spec_keys(c.app, kTrain), (std::set<std::string>{"lr", "batch_size"}));
    const nlohmann::json plan = c.plan();
    EXPECT_EQ(plan["config"]["exec"]["num_workers"], 7);
    EXPECT_EQ(plan["resume_dir"], "runs/x");
  }
}

// --model sets the arch and the backbone (both then count as named for a resume), and excludes --backbone.
TEST(Options, ModelNamesArchAndBackbone) {
  auto parse = [](std::vector<std::string> words, std::set<std::string>* given) {
    CLI::App app;
    GlobalOptions global;
    std::vector<Command> commands = add_all_commands(app, global, 0, nullptr);
    words.insert(words.begin(), "petseg");
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    app.parse(int(argv.size()), argv.data());
    for (const Command& c : commands) {
      if (c.cmd != kTrain) continue;
      if (given) *given = given_spec_keys(c.app, kTrain);
      return c.plan();
    }
    return nlohmann::json();
  };
  std::set<std::string> given;
  const nlohmann::json plan = parse({"train", "--model", "lraspp_mobilenet_v3_large"}, &given);
  EXPECT_EQ(plan["config"]["spec"]["model"], "lraspp_mobilenet_v3_large");
  EXPECT_EQ(plan["config"]["spec"]["backbone"], "mobilenet_v3_large");
  EXPECT_EQ(given, (std::set<std::string>{"model", "backbone"}));
  EXPECT_EQ(parse({"train", "--backbone", "resnet50"}, nullptr)["config"]["spec"]["model"], "deeplabv3_resnet50");
  EXPECT_THROW(parse({"train", "--model", "fcn_resnet50", "--backbone", "resnet50"}, nullptr), CLI::ExcludesError);
  EXPECT_THROW(parse({"train", "--model", "unet"}, nullptr), CLI::ValidationError);
}

// predict takes images positionally and with --input (several, folders too); eval and predict hand their inference
// options and --image-size (0: the checkpoint's) to the library as given; a bad choice names the valid ones.
TEST(Options, InferenceOptionsReachEvalAndPredict) {
  const nlohmann::json predict =
      plan_of(kPredict, {"--checkpoint", "c.pt", "--out", "o", "a.jpg", "photos/", "--input", "b.png", "--input",
                         "more/", "--mode", "slide", "--tile", "256", "--stride", "192", "--tta", "flip,0.75,1.0"});
  EXPECT_EQ(predict["inputs"], nlohmann::json({"a.jpg", "photos/", "b.png", "more/"}));
  EXPECT_EQ(predict["inference"]["mode"], "slide");
  EXPECT_EQ(predict["inference"]["tile"], 256);
  EXPECT_EQ(predict["inference"]["stride"], 192);
  EXPECT_EQ(predict["inference"]["tta"], nlohmann::json({"flip", "0.75", "1.0"}));
  EXPECT_EQ(predict["inference"]["image_size"], 0) << "the checkpoint's";
  EXPECT_EQ(predict["inference"]["resize"], "auto");
  const nlohmann::json eval =
      plan_of(kEval, {"--checkpoint", "c.pt", "--resize", "shorter", "--image-size", "520", "--native-resolution",
                      "--json", "s.json", "--precision", "bf16", "--memory-format", "channels-last"});
  EXPECT_EQ(eval["inference"]["resize"], "shorter");
  EXPECT_EQ(eval["inference"]["image_size"], 520);
  EXPECT_EQ(eval["inference"]["precision"], "bf16");
  EXPECT_EQ(eval["inference"]["memory_format"], "channels-last");
  EXPECT_EQ(eval["native_resolution"], true);
  EXPECT_EQ(eval["json"], "s.json");
  EXPECT_THROW(plan_of(kEval, {"--checkpoint", "c.pt", "--mode", "tiles"}), CLI::ValidationError);
  EXPECT_THROW(plan_of(kEval, {"--checkpoint", "c.pt", "--channels-last"}), CLI::ExtrasError)
      << "eval's memory format is --memory-format";
}

}  // namespace
}  // namespace petseg::cli
