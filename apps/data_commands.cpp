// synth, prepare, loader and data download: the data set commands.
#include <iostream>

#include "commands.h"
#include "core/log.h"
#include "data/loader_pass.h"
#include "data/oxford_pets.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "fetch/pets_download.h"
#include "plan_json.h"

namespace petseg::cli {
namespace {

data::SynthOptions synth_options(const Params& p) {
  data::SynthOptions o = p.synth;
  o.out = p.out;
  o.seed = p.train.spec.seed;
  o.layout = p.train.spec.layout;
  return o;
}

Command add_synth(CLI::App& app) {
  Command c = declare_command(&app, kSynth, "synth", "Write a synthetic data set in the exact Oxford-IIIT Pet layout (or VOC's, or plain folders)");
  auto p = c.params;
  c.plan = [p] { return nlohmann::json(synth_options(*p)); };
  c.run = [p] {
    const data::SynthOptions o = synth_options(*p);
    const data::SynthReport r = data::synthesize(o);
    log_info(r.reused ? "already there: " : "wrote ", o.out.string(), ": trainval ", r.trainval, ", test ", r.test,
             ", in no split ", r.unlisted, r.junk.empty() ? "" : petseg::detail::str_cat(", junk ", r.junk.size()));
    return 0;
  };
  return c;
}

data::PrepareOptions prepare_options(const Params& p) {
  data::PrepareOptions o;
  o.quarantine = p.quarantine;
  o.layout = p.train.spec.layout;
  o.class_colors = p.train.spec.class_colors;
  return o;
}

Command add_prepare(CLI::App& app) {
  Command c = declare_command(&app, kPrepare, "prepare",
                              "Check every sample, write the manifest, optionally quarantine bad files");
  auto p = c.params;
  c.plan = [p] {
    return nlohmann::json{{"data", p->train.spec.data}, {"prepare", prepare_options(*p)}, {"restore", p->restore}};
  };
  c.run = [p] {
    const auto& dir = p->train.spec.data;
    if (p->restore) {
      log_info("restored ", data::restore_quarantine(dir), " files; run petseg prepare again");
    } else {
      std::cout << data::format_prepare_summary(data::prepare_dataset(dir, prepare_options(*p)), dir);
    }
    return 0;
  };
  return c;
}

// The training loader as a run of this spec would configure it (--eval-transforms: the validation loader's).
struct LoaderPass {
  std::filesystem::path data;  // empty: the embedded synthetic set
  data::Split split;
  data::DatasetOptions dataset;
  data::LoaderOptions loader;
  int epochs;
};

LoaderPass loader_pass(const Params& p) {
  const train::RunSpec& s = p.train.spec;
  return {s.data, data::parse_split(p.split), train::dataset_options(s),
          train::loader_options(s, p.train.exec.loader, /*train=*/!p.eval_transforms, /*to_cuda=*/true),
          s.epochs};
}

Command add_loader(CLI::App& app) {
  Command c = declare_command(&app, kLoader, "loader", "Run the training data loader and report its throughput");
  auto p = c.params;
  c.plan = [p] {
    const LoaderPass o = loader_pass(*p);
    return nlohmann::json{
        {"data", o.data}, {"split", o.split}, {"dataset", o.dataset}, {"loader", o.loader}, {"epochs", o.epochs}};
  };
  c.run = [p] {
    const LoaderPass o = loader_pass(*p);
    data::run_loader_pass(o.data.empty() ? data::default_dataset() : o.data, o.split, o.dataset, o.loader, o.epochs);
    return 0;
  };
  return c;
}

// `data download`: the real data set, as torchvision's OxfordIIITPet(download=True) gets it, then prepared.
Command add_data_download(CLI::App* data) {
  Command c = declare_command(
      data, kDownload, "download",
      "Download the Oxford-IIIT Pet archives (checked, resumable), extract them safely, prepare");
  auto p = c.params;
  auto options = [p] { return fetch::PetsDownloadOptions{p->out, p->mirror}; };
  c.plan = [p, options] { return nlohmann::json{{"download", options()}, {"prepare", !p->no_prepare}}; };
  c.run = [p, options] {
    const fetch::PetsDownloadOptions o = options();
    fetch::download_pets(o);
    if (!p->no_prepare) std::cout << data::format_prepare_summary(data::prepare_dataset(o.out, {}), o.out);
    log_info("the data set is in ", o.out.string(), ": petseg train --data ", o.out.string());
    return 0;
  };
  return c;
}

}  // namespace

std::vector<Command> add_data_commands(CLI::App& app, const GlobalOptions&) {
  std::vector<Command> commands = {add_synth(app), add_prepare(app), add_loader(app)};
  auto* data = app.add_subcommand("data", "The real data set: download");
  data->require_subcommand(1);
  commands.push_back(add_data_download(data));
  return commands;
}

}  // namespace petseg::cli
