// The run's folder: which run a start continues (resume), the writable check, what a start writes (config.json,
// TensorBoard's session, metrics.jsonl), each epoch's record (metrics, grid, checkpoints, report) and the save of an
// interrupted run.
#include <fstream>

#include "core/check.h"
#include "core/clock.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "metrics/confusion.h"
#include "model/factory.h"
#include "report/report.h"
#include "report/visualize.h"
#include "train/run_context.h"
#include "train/schedule.h"

namespace petseg::train {
namespace {

using report::EpochRecord;

// The spec a resume continues: the saved one. One rule for --resume DIR and --resume auto: a spec option the command
// line names must have the saved value (--epochs may grow); the execution options are this start's own.
RunSpec continued_spec(const RunSpec& saved, const RunSpec& asked, const std::set<std::string>& given,
                       const fs::path& checkpoint) {
  std::set<std::string> compared = given;
  compared.erase("epochs");
  // --data is where the run's data set is on this host (another machine may mount it elsewhere): it may move, and
  // the class-colours file (usually in it) with it.
  compared.erase("data");
  compared.erase("class_colors");
  // A run saved before the spec kept weight names holds the path they resolved to on its host.
  auto resolved_before = [](const fs::path& was, const fs::path& now) { return was.is_absolute() && !now.is_absolute(); };
  if (resolved_before(saved.model.weights, asked.model.weights)) compared.erase("weights");
  if (resolved_before(saved.model.backbone_weights, asked.model.backbone_weights)) compared.erase("backbone_weights");
  // What a start resolves ("auto": the layout found; 0: the data set's classes) matches what it resolved to.
  if (asked.layout == data::kAutoLayout) compared.erase("layout");
  if (asked.model.num_classes == 0) compared.erase("num_classes");
  const std::vector<SpecDifference> changed =
      compared.empty() ? std::vector<SpecDifference>{} : spec_differences(asked, saved, compared);
  const fs::path dir = checkpoint.parent_path();
  PETSEG_CHECK(changed.empty(), "--resume ", dir.string(), ": ", describe(changed, "on this command line", "in that run"),
               ". What a run is stays as it started: drop ", changed.size() == 1 ? "that option" : "those options",
               " to continue it, or start a new run with another --name");
  RunSpec spec = saved;
  if (given.count("epochs")) {
    PETSEG_CHECK(asked.epochs >= saved.epochs, "--resume ", dir.string(), ": --epochs ", asked.epochs,
                 " is fewer than the run's ", saved.epochs, "; a resume may add epochs, not take them away");
    spec.epochs = asked.epochs;
  }
  if (given.count("data")) spec.data = asked.data;
  if (given.count("class_colors")) spec.class_colors = asked.class_colors;
  return spec;
}

}  // namespace

void resolve_run(TrainContext& ctx, const TrainRequest& request) {
  ExecOptions exec = request.config.exec;
  std::optional<fs::path> resume_dir = request.resume_dir;
  if (request.resume_auto) {
    PETSEG_CHECK(!resume_dir, "--resume auto takes the run folder from --runs-dir and --name");
    PETSEG_CHECK(!exec.name.empty(), "--resume auto needs --name (the run folder to continue or start)");
    if (fs::exists(exec.runs_dir / exec.name / "last.pt")) resume_dir = exec.runs_dir / exec.name;
  }
  RunSpec spec = request.config.spec;
  if (resume_dir) {
    ctx.run_dir = *resume_dir;
    const fs::path last = ctx.run_dir / "last.pt";
    PETSEG_CHECK(fs::exists(last), "--resume ", ctx.run_dir.string(), ": no last.pt there to resume from");
    PETSEG_CHECK(request.resume_auto || exec.name.empty() || exec.name == ctx.run_dir.filename().string(), "--resume ",
                 ctx.run_dir.string(), " continues the run named ", ctx.run_dir.filename().string(), ", not --name ",
                 exec.name);
    const CheckpointInfo info = read_checkpoint_info(last);
    spec = continued_spec(info.config.spec, spec, request.spec_given, last);
    exec.runs_dir = ctx.run_dir.parent_path();
    exec.name = ctx.run_dir.filename().string();
    ctx.exec_changes = exec_changes(info.config.exec, exec);
    ctx.state = info.state;
    ctx.resumed = true;
  } else {
    PETSEG_CHECK(!exec.distributed || !exec.name.empty(),
                 "--distributed needs --name (every rank must write to the same run folder)");
    if (exec.name.empty()) exec.name = format_now("%Y%m%d-%H%M%S", /*utc=*/false);
    ctx.run_dir = exec.runs_dir / exec.name;
  }
  ctx.config = {spec, exec};
  validate(ctx.config);
  ctx.history = report::history_from_json(ctx.state.history, (ctx.run_dir / "last.pt").string());
}

void check_writable(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PETSEG_CHECK(!ec, "cannot create the run folder ", dir.string(), ": ", ec.message());
  const fs::path probe = dir / ".petseg-write-test";
  try {
    write_file_atomic(probe, std::string("ok"));
  } catch (const Error& e) {
    PETSEG_FAIL("the run folder ", dir.string(), " is not writable (", e.what(), ")");
  }
  fs::remove(probe, ec);
}

void write_run_start(TrainContext& ctx) {
  const RunSpec& s = ctx.config.spec;
  log_info("train: ", s.epochs, " epochs x ", ctx.steps_per_epoch, " steps of ", s.batch_size,
           ctx.comm->world_size() > 1
               ? detail::str_cat(" per rank x ", ctx.comm->world_size(), " ranks (", ctx.comm->backend(), ")")
               : "",
           " at ", s.image_size, "x", s.image_size, ", ", s.optimizer, " lr ", s.lr, ", ", runtime_summary(),
           ", device ", ctx.rt.device.str(), ctx.rt.precision.amp ? ", autocast " + s.amp : "",
           ctx.config.exec.torch_script ? ", TorchScript" : "", "; run folder ", ctx.run_dir.string());
  if (!ctx.lead) return;
  write_file_atomic(ctx.run_dir / "config.json", to_json(ctx.config) + "\n");
  if (ctx.config.exec.tensorboard) {
    const fs::path dir = ctx.config.exec.tensorboard_dir.empty() ? ctx.run_dir / "tb" : ctx.config.exec.tensorboard_dir;
    // The session starts at the first step this start writes: TensorBoard drops what earlier starts wrote from there
    // on, and keeps what they wrote up to the checkpoint (the last finished epoch's scalars and grid among it).
    ctx.board = std::make_unique<report::RunBoard>(dir, ctx.state.global_step + 1, to_json(ctx.config));
    if (!ctx.board->file().empty()) log_info("TensorBoard: ", ctx.board->file().string());
  }
  std::string lines;
  for (const auto& record : ctx.history) lines += report::to_json_line(record) + "\n";
  write_file_atomic(ctx.run_dir / "metrics.jsonl", lines);
}

void keep_scaler_state(TrainContext& ctx) {
  if (!ctx.scaler) return;
  ctx.state.loss_scale = ctx.scaler->current_scale();
  ctx.state.loss_scale_growth_tracker = ctx.scaler->growth_tracker();
}

void record_epoch(TrainContext& ctx, int64_t epoch, const EpochStats& stats, const EvalResult& ev) {
  const RunSpec& c = ctx.config.spec;
  EpochRecord r;
  r.epoch = epoch + 1;
  r.step = ctx.state.global_step;
  r.train_loss = stats.loss;
  r.lr = learning_rate(c, ctx.state.global_step, ctx.total_steps);
  r.miou = ev.scores.mean_iou;
  r.pixel_accuracy = ev.scores.pixel_accuracy;
  r.iou = ev.scores.iou;
  r.class_accuracy = ev.scores.class_accuracy;
  r.dice = ev.scores.dice;
  r.precision = ev.scores.precision;
  r.recall = ev.scores.recall;
  r.confusion = ev.scores.confusion;
  r.class_names = ctx.class_names;
  r.images_per_s = ctx.comm->world_size() * stats.images / std::max(1e-9, stats.seconds);
  r.ranks = ctx.comm->world_size();
  r.seconds = stats.seconds;
  r.loss_scale = ctx.state.loss_scale;
  r.skipped_steps = stats.skipped_steps;
  r.times = stats.times;
  r.times.eval = ev.seconds;
  if (!ctx.lead) return;
  const fs::path grid = ctx.run_dir / "predictions" / ("epoch_" + std::to_string(epoch + 1) + ".png");
  fs::create_directories(grid.parent_path());
  std::optional<image::Image> grid_image;
  if (ev.vis_images.defined()) {
    grid_image = report::prediction_grid(ev.vis_images, ev.vis_targets, ev.vis_preds,
                                         ctx.layout->palette(int(ctx.class_names.size())));
    report::write_png(grid, *grid_image);
  }
  if (ctx.board) ctx.board->log_epoch(r.step, r, grid_image ? &*grid_image : nullptr);
  ctx.history.push_back(r);
  {
    std::ofstream out(ctx.run_dir / "metrics.jsonl", std::ios::app);
    out << report::to_json_line(r) << "\n";
    PETSEG_CHECK(out.good(), "cannot append to ", (ctx.run_dir / "metrics.jsonl").string());
  }
  log_info("epoch ", epoch + 1, "/", c.epochs, ": train loss ", stats.loss, ", ", r.images_per_s, " img/s (data ",
           std::lround(100 * stats.times.data / std::max(1e-9, stats.seconds)), "% of the time)\n",
           metrics::format_scores(ev.scores, r.class_names));
  ctx.state.history = report::history_to_json(ctx.history);
  const bool best = ev.scores.mean_iou > ctx.state.best_miou;
  if (best) ctx.state.best_miou = ev.scores.mean_iou;
  if (ctx.config.exec.checkpoints) {
    save_checkpoint(ctx.run_dir / "last.pt", *ctx.net, *ctx.optimizer, ctx.state, ctx.config);
    if (best) save_checkpoint(ctx.run_dir / "best.pt", *ctx.net, *ctx.optimizer, ctx.state, ctx.config);
  }
  const report::ReportHeader header{model::model_name(c.model), ctx.layout->title_of(ctx.data_root),
                                    ctx.layout->palette(int(ctx.class_names.size()))};
  report::write_report(ctx.run_dir, ctx.history, header, to_json(ctx.config), grid);
}

int save_interrupted(TrainContext& ctx, int64_t epoch) {
  if (ctx.lead && ctx.config.exec.checkpoints) {
    save_checkpoint(ctx.run_dir / "last.pt", *ctx.net, *ctx.optimizer, ctx.state, ctx.config);
    log_warning("interrupted: saved ", (ctx.run_dir / "last.pt").string(), " at epoch ", epoch + 1, " step ",
                ctx.state.epoch_step, "; continue with petseg train --resume ", ctx.run_dir.string());
  }
  ctx.comm->barrier();  // the checkpoint exists before any rank exits
  return kExitInterrupted;
}

}  // namespace petseg::train
