// The ladder: every rung is a real `petseg train` run (this binary, spawned) and a real run of the Python
// pipeline, on the same data and settings, measured on their last epoch.
#include "bench/ladder_bench.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "bench/environment.h"
#include "bench/python_reference.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/process.h"
#include "data/synth.h"
#include "report/epoch_record.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Flags = std::vector<std::string>;

struct RungSpec {
  std::string name;
  std::optional<Flags> petseg, python;  // cumulative flags; absent: the side has no such rung
  int ranks = 1;
  std::string not_applicable;  // why the rung cannot run on this machine (then nothing runs; later rungs build on it)
};

std::string join(const Flags& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

Flags plus(Flags flags, const Flags& more) {
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

// `flags` with `more`, where an option of `more` already in `flags` ("--num-workers 0") takes the new value.
Flags with(Flags flags, const Flags& more) {
  for (size_t i = 0; i < more.size(); ++i) {
    const auto at = std::find(flags.begin(), flags.end(), more[i]);
    const bool valued = i + 1 < more.size() && more[i + 1].rfind("--", 0) != 0;
    if (at != flags.end() && valued && at + 1 != flags.end()) {
      *(at + 1) = more[++i];
    } else {
      flags.push_back(more[i]);
      if (valued) flags.push_back(more[++i]);
    }
  }
  return flags;
}

Flags without(Flags flags, const std::string& flag) {
  flags.erase(std::remove(flags.begin(), flags.end(), flag), flags.end());
  return flags;
}

LadderSide run_petseg(const LadderOptions& o, const RungSpec& rung, const fs::path& work, const std::string& name) {
  Flags argv = {fs::read_symlink("/proc/self/exe").string(),
                "train",
                "--data",
                o.data.string(),
                "--runs-dir",
                (work / "runs").string(),
                "--name",
                name,
                "--backbone",
                o.backbone,
                "--image-size",
                std::to_string(o.image_size),
                "--batch-size",
                std::to_string(o.batch_size),
                "--epochs",
                std::to_string(o.epochs),
                "--max-steps",
                std::to_string(o.steps),
                "--eval-batches",
                "1",
                "--log-interval",
                "1000",
                "--lr",
                "0.01",
                "--no-checkpoints"};  // Python's rung saves none either
  argv = plus(argv, *rung.petseg);
  const fs::path log = work / (name + "-petseg.log");
  // Standard error (the training log) goes to the rung's log file.
  const ProcessResult r =
      run_process(plus({"sh", "-c", "log=$1; shift; exec \"$@\" 2>>\"$log\"", "sh", log.string()}, argv));
  std::ifstream tail_in(log);
  std::string tail, line;
  std::vector<std::string> lines;
  while (std::getline(tail_in, line)) lines.push_back(line);
  for (size_t i = lines.size() > 8 ? lines.size() - 8 : 0; i < lines.size(); ++i) tail += "\n  " + lines[i];
  PETSEG_CHECK(r.exit_code == 0, "ladder rung \"", rung.name, "\": petseg train exited with ", r.exit_code, "; log ",
               log.string(), ":", tail);
  std::ifstream in(work / "runs" / name / "metrics.jsonl");
  std::string last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  PETSEG_CHECK(!last.empty(), "ladder rung \"", rung.name, "\": no metrics.jsonl in ", (work / "runs" / name).string());
  const report::EpochRecord m = report::epoch_record_from_json(last, (work / "runs" / name / "metrics.jsonl").string());
  LadderSide s;
  s.epoch_seconds = m.seconds;
  s.images = std::llround(m.images_per_s * m.seconds);
  s.data_seconds = m.times.data;
  return s;
}

std::optional<LadderSide> run_python(const LadderOptions& o, const RungSpec& rung, const fs::path& work,
                                     const std::string& name, std::string& note) {
  const Flags args = plus({"--data", o.data.string(), "--backbone", o.backbone, "--image-size",
                           std::to_string(o.image_size), "--batch-size", std::to_string(o.batch_size), "--epochs",
                           std::to_string(o.epochs), "--steps", std::to_string(o.steps)},
                          *rung.python);
  const ReferenceRun run = run_reference(o.python_exe, "ladder.py", args, work / (name + "-python.log"));
  if (!run.result) {
    note = run.skipped;
    return std::nullopt;
  }
  LadderSide s;
  s.epoch_seconds = run.result->at("epoch_seconds");
  s.images = run.result->at("images");
  s.data_seconds = run.result->at("data_seconds");
  return s;
}

// The run of the median images/s, with every repeat's rate kept.
LadderSide median_of(std::vector<LadderSide> runs) {
  std::sort(runs.begin(), runs.end(),
            [](const LadderSide& a, const LadderSide& b) { return a.images_per_s() < b.images_per_s(); });
  LadderSide m = runs[runs.size() / 2];
  for (const auto& r : runs) m.all_images_per_s.push_back(r.images_per_s());
  return m;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

// The folder the runs go to: the one asked for (kept), or a fresh temporary one removed afterwards.
class WorkDir {
 public:
  explicit WorkDir(const fs::path& asked) {
    if (!asked.empty()) {
      fs::create_directories(asked);
      path_ = asked;
      return;
    }
    std::string tmpl = (fs::temp_directory_path() / "petseg-ladder-XXXXXX").string();
    PETSEG_CHECK(::mkdtemp(tmpl.data()), "cannot create a temporary folder for the ladder's runs");
    path_ = tmpl;
    owned_ = true;
  }
  ~WorkDir() {
    std::error_code ec;
    if (owned_) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool owned_ = false;
};

// The fastest rung of one side among `rungs` (by images/s), or -1.
int fastest(const std::vector<LadderRung>& rungs, bool petseg) {
  int best = -1;
  for (size_t i = 0; i < rungs.size(); ++i) {
    const auto& side = petseg ? rungs[i].petseg : rungs[i].python;
    const auto& current = best < 0 ? std::optional<LadderSide>() : (petseg ? rungs[best].petseg : rungs[best].python);
    if (side && (!current || side->images_per_s() > current->images_per_s())) best = int(i);
  }
  return best;
}

void write_ladder_json(const fs::path& path, const LadderResult& result);

// Runs one rung: `repeats` runs of each side, interleaved so both see the same machine state; the median of each.
class Ladder {
 public:
  Ladder(const LadderOptions& o, const fs::path& work, LadderResult& result)
      : o_(o), work_(work), result_(result), python_(o.python) {
    if (!python_) result_.python_note = "Python reference not run (--no-python)";
  }
  bool python() const { return python_; }
  void measure(const RungSpec& spec) {
    const int index = int(result_.rungs.size());
    log_info("ladder ", index + 1, ": ", spec.name, spec.petseg ? " (petseg " + join(*spec.petseg) + ")" : "",
             spec.python ? " (Python " + join(*spec.python) + ")" : "");
    LadderRung rung{spec.name,
                    spec.petseg ? join(*spec.petseg) : "",
                    spec.python ? join(*spec.python) : "",
                    spec.ranks,
                    std::nullopt,
                    std::nullopt,
                    spec.not_applicable};
    if (!spec.not_applicable.empty()) {
      log_info("  not applicable: ", spec.not_applicable);
      result_.rungs.push_back(rung);
      return;
    }
    // A side whose run fails is reported in this rung and the ladder goes on: one failure never loses the others.
    auto failed = [&](const char* side, const std::exception& e) {
      const std::string what = e.what();
      rung.note += (rung.note.empty() ? "" : "; ") + std::string(side) + " failed: " + what.substr(0, what.find('\n'));
      log_warning("ladder rung \"", spec.name, "\": ", side, " failed: ", what);
    };
    std::vector<LadderSide> ours, theirs;
    bool ours_ok = spec.petseg.has_value(), theirs_ok = spec.python.has_value();
    for (int r = 0; r < o_.repeats; ++r) {
      const std::string name = "rung" + std::to_string(index) + "-" + std::to_string(r);
      if (ours_ok) {
        try {
          ours.push_back(run_petseg(o_, spec, work_, name));
        } catch (const std::exception& e) {
          failed("petseg", e), ours_ok = false, ours.clear();
        }
      }
      if (theirs_ok && python_) {
        try {
          if (auto side = run_python(o_, spec, work_, name, result_.python_note)) {
            theirs.push_back(*side);
          } else {
            python_ = false;
          }
        } catch (const std::exception& e) {
          failed("Python", e), theirs_ok = false, theirs.clear();
        }
      }
    }
    if (!ours.empty()) rung.petseg = median_of(ours);
    if (!theirs.empty()) rung.python = median_of(theirs);
    log_info("  petseg ", rung.petseg ? fixed(rung.petseg->images_per_s(), 2) + " img/s" : "-", ", Python ",
             rung.python ? fixed(rung.python->images_per_s(), 2) + " img/s" : "-");
    result_.rungs.push_back(rung);
    if (!o_.json_out.empty()) write_ladder_json(o_.json_out, result_);  // what is measured is kept as it comes
  }

 private:
  const LadderOptions& o_;
  fs::path work_;
  LadderResult& result_;
  bool python_;
};

// --rungs: rungs separated by commas, each one or more steps joined by '+'. The layout steps (workers, pin,
// torchscript, dp, ddp) build on the rung before; the precision steps (cl, bf16) start from each side's fastest
// layout rung and then build on each other; compile is Python's torch.compile on its better precision rung.
const std::vector<std::string> kLayoutSteps = {"workers", "pin", "torchscript", "dp", "ddp"};
const std::vector<std::string> kPrecisionSteps = {"cl", "bf16"};
const char* const kAllRungs = "baseline,workers,pin,torchscript,dp,ddp,cl,bf16,compile";

bool is_one_of(const std::string& step, const std::vector<std::string>& steps) {
  return std::find(steps.begin(), steps.end(), step) != steps.end();
}

std::vector<std::vector<std::string>> parse_rungs(const std::string& text) {
  std::vector<std::vector<std::string>> rungs;
  std::stringstream in(text.empty() ? kAllRungs : text);
  int stage = 0;  // 0 layout, 1 precision, 2 compile: rungs come in this order
  for (std::string rung; std::getline(in, rung, ',');) {
    std::vector<std::string> steps;
    std::stringstream parts(rung);
    for (std::string step; std::getline(parts, step, '+');) {
      const int kind = is_one_of(step, kLayoutSteps)      ? 0
                       : is_one_of(step, kPrecisionSteps) ? 1
                       : step == "compile"                ? 2
                                                          : -1;
      PETSEG_CHECK(kind >= 0 || (step == "baseline" && rungs.empty() && rung == step), "bench ladder: --rungs \"",
                   text, "\": unknown or misplaced step \"", step, "\"; valid: ", kAllRungs,
                   " (baseline first and alone; join steps of one rung with +)");
      PETSEG_CHECK(kind < 0 || kind >= stage, "bench ladder: --rungs \"", text, "\": \"", step,
                   "\" comes after a later kind of step (order: layout steps, then cl/bf16, then compile)");
      stage = std::max(stage, kind);
      steps.push_back(step);
    }
    PETSEG_CHECK(!steps.empty(), "bench ladder: --rungs \"", text, "\" has an empty rung");
    rungs.push_back(steps);
  }
  PETSEG_CHECK(!rungs.empty() && rungs.front() == std::vector<std::string>{"baseline"}, "bench ladder: --rungs \"",
               text, "\" must start with baseline (the rung every speed-up is measured against)");
  return rungs;
}

// What one layout step adds on each side, its name, and why it cannot run here (if it cannot).
struct StepFlags {
  Flags petseg, python;
  std::string name, not_applicable;
  int ranks = 0;  // > 0: the rung runs this many processes
};

StepFlags layout_step(const std::string& step, const LadderOptions& o, bool cuda) {
  const std::string workers = std::to_string(o.workers);
  const int gpus = cuda ? cuda_device_count() : 0;
  const std::string one_gpu = cuda && gpus < 2 ? "needs 2 GPUs, this machine has " + std::to_string(gpus) : "";
  if (step == "workers") return {{"--num-workers", workers}, {"--workers", workers}, workers + " workers", "", 0};
  if (step == "pin") return {{"--pin-memory"}, {"--pin-memory"}, "pin memory", "", 0};
  if (step == "torchscript") return {{"--torch-script"}, {"--torch-script"}, "TorchScript", "", 0};
  if (step == "dp") return {{"--data-parallel"}, {"--data-parallel"}, "DataParallel", one_gpu, 0};
  const std::string ranks = std::to_string(o.ranks);
  return {{"--nproc-per-node", ranks},
          {"--ddp", ranks},
          "DDP " + ranks + (o.ranks == 1 ? " rank" : " ranks") + (cuda ? " (NCCL)" : " (Gloo)"),
          cuda && o.ranks < 2 ? one_gpu : "",
          o.ranks};
}

// The layout rungs, each adding its steps to the last rung that could run.
std::vector<RungSpec> ladder_specs(const LadderOptions& o, bool cuda, const std::vector<std::vector<std::string>>& rungs) {
  const Flags dev = {"--device", cuda ? "cuda" : "cpu"};
  const Flags cudnn = {cuda && !o.cudnn_benchmark ? "--no-cudnn-benchmark" : ""};
  const Flags py_cudnn = {cuda && o.cudnn_benchmark ? "--cudnn-benchmark" : ""};
  std::vector<RungSpec> specs;
  // petseg pins by default when training on CUDA: the rungs before the pinned-memory rung turn it off.
  specs.push_back({"baseline (0 workers)", plus(plus(dev, cudnn), {"--no-pin-memory", "--num-workers", "0"}),
                   plus(plus(dev, py_cudnn), {"--workers", "0"}), 1, ""});
  for (const auto& rung : rungs) {
    if (!is_one_of(rung.front(), kLayoutSteps)) continue;
    const RungSpec* last = &specs.front();
    for (const RungSpec& s : specs) {
      if (s.not_applicable.empty()) last = &s;
    }
    RungSpec spec{"", *last->petseg, *last->python, last->ranks, ""};
    for (const std::string& step : rung) {
      const StepFlags f = layout_step(step, o, cuda);
      spec.name += "+ " + f.name + (&step == &rung.back() ? "" : " ");
      if (step == "pin") spec.petseg = without(*spec.petseg, "--no-pin-memory");
      spec.petseg = with(*spec.petseg, f.petseg), spec.python = with(*spec.python, f.python);
      if (f.ranks) spec.ranks = f.ranks;
      if (!f.not_applicable.empty()) spec.not_applicable = f.not_applicable;
    }
    specs.push_back(spec);
  }
  for (RungSpec& s : specs) {  // the empty placeholders of the cuDNN flags
    s.petseg = without(*s.petseg, ""), s.python = without(*s.python, "");
  }
  return specs;
}

// Each side's best configuration, by measuring: the precision rungs on each side's own fastest layout rung, and
// Python's torch.compile on the better of its last two precision rungs.
void measure_best(Ladder& ladder, const std::vector<RungSpec>& specs, LadderResult& result, bool compile,
                  const std::vector<std::vector<std::string>>& rungs) {
  const int fp = fastest(result.rungs, true), fy = fastest(result.rungs, false);
  const RungSpec& lp = specs[size_t(std::max(fp, 0))];
  const RungSpec& ly = specs[size_t(std::max(fy, 0))];
  RungSpec current{"best layout", *lp.petseg, *ly.python, lp.ranks, ""};
  std::vector<RungSpec> measured;
  for (const auto& rung : rungs) {
    if (!is_one_of(rung.front(), kPrecisionSteps)) continue;
    for (const std::string& step : rung) {
      const Flags f = step == "cl" ? Flags{"--channels-last"} : Flags{"--amp", "bf16"};
      current.name += step == "cl" ? " + channels_last" : " + bf16";
      current.petseg = plus(*current.petseg, f), current.python = plus(*current.python, f);
    }
    RungSpec spec = current;
    if (ly.ranks != lp.ranks) spec.name += " (Python: its own best layout)";
    ladder.measure(spec);
    measured.push_back(spec);
  }
  const bool compile_asked = std::any_of(rungs.begin(), rungs.end(), [](const auto& r) { return r.front() == "compile"; });
  if (!compile_asked || !ladder.python() || !compile || fy < 0) return;
  Flags base = *ly.python;
  if (!measured.empty()) {
    base = *measured.back().python;
    const size_t n = result.rungs.size();
    if (measured.size() >= 2) {
      const LadderRung &a = result.rungs[n - 2], &b = result.rungs[n - 1];
      if (a.python && b.python && a.python->images_per_s() >= b.python->images_per_s()) {
        base = *measured[measured.size() - 2].python;
      }
    }
  }
  ladder.measure({"+ torch.compile (Python only)", std::nullopt, plus(without(base, "--torch-script"), {"--compile"}),
                  ly.ranks, ""});
}

json side_json(const LadderSide& s, const std::optional<LadderSide>& base) {
  return json{{"epoch_seconds", s.epoch_seconds},
              {"images", s.images},
              {"images_per_s", s.images_per_s()},
              {"all_images_per_s", s.all_images_per_s},
              {"data_share", s.data_share()},
              {"speedup_vs_baseline", base && base->images_per_s() > 0 ? s.images_per_s() / base->images_per_s() : 0}};
}

void write_ladder_json(const fs::path& path, const LadderResult& result) {
  json rows = json::array();
  const LadderRung& base = result.rungs.front();
  for (const auto& r : result.rungs) {
    json row = {
        {"rung", r.name}, {"petseg_flags", r.petseg_flags}, {"python_flags", r.python_flags}, {"ranks", r.ranks}};
    if (!r.note.empty()) row["note"] = r.note;
    if (r.petseg) row["petseg"] = side_json(*r.petseg, base.petseg);
    if (r.python) row["python"] = side_json(*r.python, base.python);
    if (r.petseg && r.python) row["petseg_over_python"] = r.petseg->images_per_s() / r.python->images_per_s();
    rows.push_back(row);
  }
  const int bp = fastest(result.rungs, true), by = fastest(result.rungs, false);
  json best = {{"petseg_rung", bp >= 0 ? json(result.rungs[bp].name) : json(nullptr)},
               {"python_rung", by >= 0 ? json(result.rungs[by].name) : json(nullptr)}};
  if (bp >= 0 && by >= 0) {
    best["petseg_over_python"] = result.rungs[bp].petseg->images_per_s() / result.rungs[by].python->images_per_s();
  }
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const json doc = {{"benchmark", "ladder"},
                    {"settings", result.settings},
                    {"environment", json::parse(result.environment)},
                    {"python_note", result.python_note},
                    {"rungs", rows},
                    {"best", best}};
  write_file_atomic(path, doc.dump(1) + "\n");
}

}  // namespace

LadderResult run_ladder(const LadderOptions& options) {
  LadderOptions o = options;
  if (o.data.empty()) o.data = data::default_dataset();
  PETSEG_CHECK(o.steps >= 1 && o.epochs >= 2,
               "bench ladder: needs --steps >= 1 and --epochs >= 2 (the first warms up)");
  PETSEG_CHECK(o.repeats >= 1, "bench ladder: --repeats must be >= 1");
  const bool cuda = resolve_device(o.device).is_cuda();
  if (cuda) o.ranks = std::max(1, std::min(o.ranks, cuda_device_count()));
  PETSEG_CHECK(o.ranks >= 1, "bench ladder: --ranks must be >= 1");
  WorkDir temp(o.work_dir);
  LadderResult result;
  result.environment = describe_environment(o.python ? reference_python(o.python_exe) : "").dump();
  result.settings = "DeepLabV3-" + o.backbone + " on " + (cuda ? "cuda" : "cpu") + ", " + std::to_string(o.image_size) +
                    "x" + std::to_string(o.image_size) + " crops, batch " + std::to_string(o.batch_size) +
                    " per process, " + std::to_string(o.steps) + " steps per epoch and process, epoch " +
                    std::to_string(o.epochs) + " of " + std::to_string(o.epochs) + " measured, median of " +
                    std::to_string(o.repeats) + " run(s) per rung" +
                    (cuda ? std::string(", cuDNN benchmark ") + (o.cudnn_benchmark ? "on" : "off") +
                                " and TF32 as PyTorch's defaults on both sides"
                          : "");
  Ladder ladder(o, temp.path(), result);
  const std::vector<std::vector<std::string>> rungs = parse_rungs(o.rungs);
  const std::vector<RungSpec> specs = ladder_specs(o, cuda, rungs);
  for (const auto& spec : specs) ladder.measure(spec);
  measure_best(ladder, specs, result, o.compile, rungs);
  if (!o.json_out.empty()) write_ladder_json(o.json_out, result);
  if (!o.svg_out.empty()) write_file_atomic(o.svg_out, ladder_svg(result));
  return result;
}

std::string format_ladder(const LadderResult& r) {
  std::ostringstream os;
  os << "optimization ladder: " << r.settings << "\n" << environment_line(json::parse(r.environment)) << "\n";
  if (!r.python_note.empty()) os << r.python_note << "\n";
  os << std::left << std::setw(44) << "rung" << std::right << std::setw(10) << "s/epoch" << std::setw(8) << "img/s"
     << std::setw(7) << "data" << std::setw(8) << "x base"
     << "  |" << std::setw(10) << "Python s" << std::setw(8) << "img/s" << std::setw(7) << "data" << std::setw(8)
     << "x base"
     << "  | petseg/Python\n";
  const LadderRung& base = r.rungs.front();
  double worst_ratio = 1e9, worst_data = 0;
  std::string worst_rung;
  auto cells = [&](const std::optional<LadderSide>& s, const std::optional<LadderSide>& b) {
    std::ostringstream c;
    if (!s) {
      c << std::setw(10) << "-" << std::setw(8) << "-" << std::setw(7) << "-" << std::setw(8) << "-";
      return c.str();
    }
    c << std::setw(10) << fixed(s->epoch_seconds, 2) << std::setw(8) << fixed(s->images_per_s(), 2) << std::setw(6)
      << fixed(100 * s->data_share(), 1) << "%" << std::setw(7)
      << (b ? fixed(s->images_per_s() / b->images_per_s(), 2) : std::string("-")) << "x";
    return c.str();
  };
  for (size_t i = 0; i < r.rungs.size(); ++i) {
    const LadderRung& g = r.rungs[i];
    os << std::left << std::setw(44) << g.name.substr(0, 43) << std::right << cells(g.petseg, base.petseg) << "  |"
       << cells(g.python, base.python) << "  | ";
    if (g.petseg && g.python) {
      const double ratio = g.petseg->images_per_s() / g.python->images_per_s();
      os << fixed(ratio, 2) << "x";
      if (ratio < worst_ratio) worst_ratio = ratio, worst_rung = g.name;
    }
    if (i > 0 && g.petseg) worst_data = std::max(worst_data, g.petseg->data_share());
    if (!g.note.empty()) os << (g.petseg || g.python ? "  " : "") << g.note;
    os << "\n";
  }
  const int bp = fastest(r.rungs, true), by = fastest(r.rungs, false);
  os << "targets:\n  data wait < 3% of the epoch from the workers rung on: " << fixed(100 * worst_data, 1)
     << "% highest -> " << (worst_data < 0.03 ? "met" : "NOT met") << "\n";
  if (worst_rung.size()) {
    os << "  petseg / Python per rung: lowest " << fixed(worst_ratio, 2) << "x (" << worst_rung << ")\n";
  }
  if (bp >= 0 && by >= 0) {
    const double ratio = r.rungs[bp].petseg->images_per_s() / r.rungs[by].python->images_per_s();
    os << "  best configuration, petseg (" << r.rungs[bp].name << ", " << fixed(r.rungs[bp].petseg->images_per_s(), 2)
       << " img/s) vs Python (" << r.rungs[by].name << ", " << fixed(r.rungs[by].python->images_per_s(), 2)
       << " img/s): " << fixed(ratio, 2) << "x -> " << (ratio >= 1.0 ? "met" : "NOT met") << " (target >= 1.0x)\n";
  }
  return os.str();
}

std::string ladder_svg(const LadderResult& r) {
  const int label_w = 300, bar_w = 380, row_h = 38, top = 56, width = label_w + bar_w + 120;
  const int height = top + row_h * int(r.rungs.size()) + 30;
  double max_rate = 0;
  for (const auto& g : r.rungs) {
    if (g.petseg) max_rate = std::max(max_rate, g.petseg->images_per_s());
    if (g.python) max_rate = std::max(max_rate, g.python->images_per_s());
  }
  max_rate = std::max(max_rate, 1e-9);
  auto esc = [](std::string s) {
    std::string out;
    for (char c : s) out += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
    return out;
  };
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
     << "\" font-family=\"sans-serif\" font-size=\"13\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
     << "<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Training images/s per rung (higher is "
        "better)</text>\n"
     << "<text x=\"12\" y=\"40\" fill=\"#555\" font-size=\"11\">" << esc(r.settings) << "</text>\n"
     << "<rect x=\"" << width - 170 << "\" y=\"10\" width=\"12\" height=\"12\" fill=\"#1b7f79\"/><text x=\""
     << width - 153 << "\" y=\"21\">petseg</text>\n"
     << "<rect x=\"" << width - 95 << "\" y=\"10\" width=\"12\" height=\"12\" fill=\"#a0a0a0\"/><text x=\""
     << width - 78 << "\" y=\"21\">Python</text>\n";
  for (size_t i = 0; i < r.rungs.size(); ++i) {
    const auto& g = r.rungs[i];
    const int y = top + int(i) * row_h;
    os << "<text x=\"12\" y=\"" << y + 19 << "\">" << esc(g.name) << "</text>\n";
    auto bar = [&](double rate, int dy, const char* color) {
      const int w = std::max(1, int(bar_w * rate / max_rate));
      os << "<rect x=\"" << label_w << "\" y=\"" << y + dy << "\" width=\"" << w << "\" height=\"14\" fill=\"" << color
         << "\"/><text x=\"" << label_w + w + 6 << "\" y=\"" << y + dy + 12 << "\" font-size=\"11\">" << fixed(rate, 2)
         << "</text>\n";
    };
    if (g.petseg) bar(g.petseg->images_per_s(), 4, "#1b7f79");
    if (g.python) bar(g.python->images_per_s(), 20, "#a0a0a0");
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace petseg::bench
