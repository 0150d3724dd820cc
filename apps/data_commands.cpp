// synth, prepare and loader: the data set commands.
#include <memory>

#include "bench/data_bench.h"
#include "cli_options.h"
#include "commands.h"
#include "core/log.h"
#include "data/oxford_pets.h"
#include "data/synth.h"
#include "fetch/pets_download.h"

namespace petseg::cli {
namespace {

Command add_synth(CLI::App& app) {
  auto o = std::make_shared<data::SynthOptions>();
  auto* cmd = app.add_subcommand("synth", "Write a synthetic data set in the exact Oxford-IIIT Pet layout");
  cmd->add_option("--out", o->out, "Output folder (new or empty)")->required();
  cmd->add_option("--count", o->count, "Samples named in the split files")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed; the same seed gives the same files")->capture_default_str();
  cmd->add_option("--min-side", o->min_side, "Smallest image side in pixels")->capture_default_str();
  cmd->add_option("--max-side", o->max_side, "Largest image side in pixels")->capture_default_str();
  cmd->add_flag("--junk", o->junk, "Also plant every kind of broken file the real data set has");
  return {cmd, [o] {
            const data::SynthReport r = data::synthesize(*o);
            log_info(r.reused ? "already there: " : "wrote ", o->out.string(), ": trainval ", r.trainval, ", test ",
                     r.test, ", in no split ", r.unlisted,
                     r.junk.empty() ? "" : petseg::detail::str_cat(", junk ", r.junk.size()));
            return 0;
          }};
}

Command add_prepare(CLI::App& app) {
  struct Options {
    std::string dir;
    data::PrepareOptions prepare;
    bool restore = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("prepare", "Check every sample, write the manifest, optionally quarantine bad files");
  cmd->add_option("--data", o->dir, "Data set folder (images/ and annotations/)")->required();
  cmd->add_flag("--quarantine", o->prepare.quarantine, "MOVE rejected files into DATA/quarantine/");
  cmd->add_flag("--restore", o->restore, "Move quarantined files back where they were");
  return {cmd, [o] {
            if (o->restore) {
              log_info("restored ", data::restore_quarantine(o->dir), " files; run petseg prepare again");
            } else {
              std::cout << data::format_prepare_summary(data::prepare_dataset(o->dir, o->prepare), o->dir);
            }
            return 0;
          }};
}

Command add_loader(CLI::App& app) {
  struct Options {
    std::string data, split = "trainval", border = "3class";
    data::LoaderOptions loader;
    int epochs = 1;
    bool eval = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("loader", "Run the training data loader and report its throughput");
  cmd->add_option("--data", o->data, "Data set folder (default: the embedded synthetic set)");
  cmd->add_option("--split", o->split, "trainval, test or all")->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "Epochs to run")->capture_default_str();
  cmd->add_flag("--eval-transforms", o->eval, "Resize only, as evaluation does (no augmentation)");
  add_loader_options(cmd, o->loader, o->border);
  return {cmd, [o] {
            o->loader.border = data::parse_border_mode(o->border);
            o->loader.train = !o->eval;
            const auto dir = o->data.empty() ? data::default_dataset() : std::filesystem::path(o->data);
            bench::run_loader_pass(dir, data::parse_split(o->split), o->loader, o->epochs);
            return 0;
          }};
}

// `data download`: the real data set, as torchvision's OxfordIIITPet(download=True) gets it, then prepared.
Command add_data_download(CLI::App* data) {
  struct Options {
    fetch::PetsDownloadOptions download;
    bool no_prepare = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = data->add_subcommand(
      "download", "Download the Oxford-IIIT Pet archives (checked, resumable), extract them safely, prepare");
  cmd->add_option("--out", o->download.out, "Data set folder (images/ and annotations/ go there)")->required();
  cmd->add_option("--mirror", o->download.mirror,
                  "Base URL of a server with the same archive names and an MD5SUMS file (default: the official ones)");
  cmd->add_flag("--no-prepare", o->no_prepare, "Do not run petseg prepare afterwards");
  return {cmd, [o] {
            fetch::download_pets(o->download);
            if (!o->no_prepare) {
              std::cout << data::format_prepare_summary(data::prepare_dataset(o->download.out, {}), o->download.out);
            }
            log_info("the data set is in ", o->download.out.string(), ": petseg train --data ", o->download.out.string());
            return 0;
          }};
}

}  // namespace

std::vector<Command> add_data_commands(CLI::App& app) {
  std::vector<Command> commands = {add_synth(app), add_prepare(app), add_loader(app)};
  auto* data = app.add_subcommand("data", "The real data set: download");
  data->require_subcommand(1);
  commands.push_back(add_data_download(data));
  return commands;
}

}  // namespace petseg::cli
