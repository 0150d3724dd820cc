// bench data | model | ladder: measurements side by side with the Python reference.
#include <iostream>
#include <memory>

#include "bench/data_bench.h"
#include "bench/ladder_bench.h"
#include "bench/model_bench.h"
#include "commands.h"
#include "data/synth.h"
#include "plan_json.h"

namespace petseg::cli {
namespace {

bench::DataBenchOptions data_bench_options(const Params& p) {
  bench::DataBenchOptions o;
  o.data = p.train.spec.data;
  o.split = data::parse_split(p.split);
  // The training loader of this spec; its worker count is each row's.
  o.loader = train::loader_options(p.train.spec, p.train.exec.loader, /*train=*/true, /*to_cuda=*/true);
  o.workers = p.worker_counts;
  o.epochs = p.train.spec.epochs;
  o.repeats = p.repeats;
  o.python = !p.no_python;
  o.python_exe = p.python;
  o.json_out = p.json;
  return o;
}

Command add_bench_data(CLI::App* bench) {
  Command c = declare_command(bench, kBenchData, "data", "Loader images/s per worker count vs torch DataLoader");
  auto p = c.params;
  c.plan = [p] { return nlohmann::json(data_bench_options(*p)); };
  c.run = [p] {
    bench::DataBenchOptions o = data_bench_options(*p);
    if (o.data.empty()) o.data = data::default_dataset();
    std::cout << bench::format_data_bench(bench::run_data_bench(o), o);
    return 0;
  };
  return c;
}

bench::ModelBenchOptions model_bench_options(const Params& p, const GlobalOptions& global) {
  bench::ModelBenchOptions o;
  o.model = model::model_name(p.train.spec.model);
  o.device = p.train.exec.device;
  o.threads = global.threads;
  o.warmup = p.warmup;
  o.repeats = p.repeats;
  o.cases = p.cases;
  o.variants = p.variants;
  o.python = !p.no_python;
  o.compile = !p.no_compile;
  o.optimizer_impls = p.optimizer_impls;
  o.cudnn_benchmark = p.train.exec.cudnn_benchmark;
  o.compile_timeout_s = p.compile_timeout;
  o.ceilings = p.ceilings;
  o.python_exe = p.python;
  o.json_out = p.json;
  return o;
}

Command add_bench_model(CLI::App* bench, const GlobalOptions& global) {
  Command c = declare_command(
      bench, kBenchModel, "model",
      "Eval forward and train step per precision, layout and mode vs torchvision (and torch.compile)");
  auto p = c.params;
  c.plan = [p, &global] { return nlohmann::json(model_bench_options(*p, global)); };
  c.run = [p, &global] {
    std::cout << bench::format_model_bench(bench::run_model_bench(model_bench_options(*p, global)));
    return 0;
  };
  return c;
}

bench::LadderOptions ladder_options(const Params& p) {
  bench::LadderOptions o;
  o.data = p.train.spec.data;
  o.backbone = p.train.spec.model.backbone;
  o.device = p.train.exec.device;
  o.image_size = p.train.spec.image_size;
  o.batch_size = p.train.spec.batch_size;
  o.steps = p.steps;
  o.epochs = p.train.spec.epochs;
  o.workers = p.train.exec.loader.num_workers;
  o.ranks = p.ranks;
  o.repeats = p.repeats;
  o.python = !p.no_python;
  o.compile = !p.no_compile;
  o.rungs = p.rungs;
  o.cudnn_benchmark = p.train.exec.cudnn_benchmark;
  o.python_exe = p.python;
  o.work_dir = p.work_dir;
  o.json_out = p.json;
  o.svg_out = p.svg;
  return o;
}

Command add_bench_ladder(CLI::App* bench) {
  Command c = declare_command(
      bench, kBenchLadder, "ladder",
      "The original's optimization ladder (workers, pinned memory, TorchScript, DataParallel, DDP) vs Python");
  auto p = c.params;
  c.plan = [p] { return nlohmann::json(ladder_options(*p)); };
  c.run = [p] {
    std::cout << bench::format_ladder(bench::run_ladder(ladder_options(*p)));
    return 0;
  };
  return c;
}

}  // namespace

std::vector<Command> add_bench_commands(CLI::App& app, const GlobalOptions& global) {
  auto* bench = app.add_subcommand("bench", "Benchmarks, measured side by side with the Python reference");
  bench->require_subcommand(1);
  return {add_bench_data(bench), add_bench_model(bench, global), add_bench_ladder(bench)};
}

}  // namespace petseg::cli
