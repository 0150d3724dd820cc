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

#include "bench/python_reference.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/process.h"
#include "data/synth.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct RungSpec {
  std::string name;
  std::vector<std::string> petseg, python;  // cumulative flags
  int ranks = 1;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

std::string last_lines(const fs::path& log, int n) {
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > size_t(n) ? lines.size() - n : 0; i < lines.size(); ++i) out += "\n  " + lines[i];
  return out;
}

// Runs argv with its standard error going to `log` (the training logs of a rung), standard output captured.
ProcessResult run_logged(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<std::string> sh = {"sh", "-c", "exec \"$0\" \"$@\" 2>>\"$PETSEG_LADDER_LOG\""};
  sh.insert(sh.end(), argv.begin(), argv.end());
  ::setenv("PETSEG_LADDER_LOG", log.c_str(), 1);
  return run_process(sh);
}

LadderSide run_petseg(const LadderOptions& o, const RungSpec& rung, const fs::path& work, int index) {
  const std::string name = "rung" + std::to_string(index);
  std::vector<std::string> argv = {fs::read_symlink("/proc/self/exe").string(),
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
                                   "0.01"};
  argv.insert(argv.end(), rung.petseg.begin(), rung.petseg.end());
  const fs::path log = work / (name + "-petseg.log");
  const ProcessResult r = run_logged(argv, log);
  PETSEG_CHECK(r.exit_code == 0, "ladder rung \"", rung.name, "\": petseg train exited with ", r.exit_code, "; log ",
               log.string(), ":", last_lines(log, 8));
  std::ifstream in(work / "runs" / name / "metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  PETSEG_CHECK(!last.empty(), "ladder rung \"", rung.name, "\": no metrics.jsonl in ", (work / "runs" / name).string());
  const json m = json::parse(last);
  LadderSide s;
  s.epoch_seconds = m.at("seconds");
  s.images = std::llround(m.at("images_per_s").get<double>() * s.epoch_seconds);
  s.data_seconds = m.at("times").at("data");
  return s;
}

std::optional<LadderSide> run_python(const LadderOptions& o, const RungSpec& rung, const fs::path& work, int index,
                                     std::string& note) {
  std::vector<std::string> argv = {reference_python(o.python_exe),   python_reference("ladder.py").string(),
                                   "--data",       o.data.string(),
                                   "--backbone",   o.backbone,
                                   "--image-size", std::to_string(o.image_size),
                                   "--batch-size", std::to_string(o.batch_size),
                                   "--epochs",     std::to_string(o.epochs),
                                   "--steps",      std::to_string(o.steps)};
  argv.insert(argv.end(), rung.python.begin(), rung.python.end());
  const fs::path log = work / ("rung" + std::to_string(index) + "-python.log");
  const ProcessResult r = run_logged(argv, log);
  if (r.exit_code == 3) {
    note = "Python reference skipped: " + reference_python(o.python_exe) + " has no torch/torchvision (scripts/setup.sh installs them)";
    return std::nullopt;
  }
  PETSEG_CHECK(r.exit_code == 0, "ladder rung \"", rung.name, "\": the Python reference exited with ", r.exit_code,
               "; log ", log.string(), ":", last_lines(log, 8));
  const std::string out = r.out.substr(0, r.out.find_last_not_of("\n") + 1);
  const json j = json::parse(out.substr(out.find_last_of('\n') + 1));
  LadderSide s;
  s.epoch_seconds = j.at("epoch_seconds");
  s.images = j.at("images");
  s.data_seconds = j.at("data_seconds");
  return s;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

// The flags of `rung` with `extra` appended, as a new rung.
RungSpec extend(const RungSpec& rung, const std::string& name, std::vector<std::string> petseg,
                std::vector<std::string> python, int ranks = 0) {
  RungSpec r = rung;
  r.name = name;
  r.petseg.insert(r.petseg.end(), petseg.begin(), petseg.end());
  r.python.insert(r.python.end(), python.begin(), python.end());
  if (ranks) r.ranks = ranks;
  return r;
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

}  // namespace

LadderResult run_ladder(const LadderOptions& options) {
  LadderOptions o = options;
  if (o.data.empty()) o.data = data::default_dataset();
  PETSEG_CHECK(o.steps >= 1 && o.epochs >= 2,
               "bench ladder: needs --steps >= 1 and --epochs >= 2 (the first warms up)");
  WorkDir temp(o.work_dir);
  const fs::path work = temp.path();
  const std::string workers = std::to_string(o.workers);

  std::vector<RungSpec> specs;
  specs.push_back({"baseline (0 workers)", {"--num-workers", "0"}, {"--workers", "0"}});
  specs.push_back({"+ " + workers + " workers", {"--num-workers", workers}, {"--workers", workers}});
  specs.push_back(extend(specs.back(), "+ pin memory", {"--pin-memory"}, {"--pin-memory"}));
  specs.push_back(extend(specs.back(), "+ TorchScript", {"--torch-script"}, {"--torch-script"}));
  specs.push_back(extend(specs.back(), "+ DataParallel", {"--data-parallel"}, {"--data-parallel"}));
  specs.push_back(extend(specs.back(), "+ DDP " + std::to_string(o.ranks) + " ranks",
                         {"--nproc-per-node", std::to_string(o.ranks)}, {"--ddp", std::to_string(o.ranks)}, o.ranks));

  LadderResult result;
  result.settings = "DeepLabV3-" + o.backbone + ", " + std::to_string(o.image_size) + "x" +
                    std::to_string(o.image_size) + " crops, batch " + std::to_string(o.batch_size) + " per process, " +
                    std::to_string(o.steps) + " steps per epoch and process, epoch " + std::to_string(o.epochs) +
                    " of " + std::to_string(o.epochs) + " measured, " +
                    std::to_string(std::thread::hardware_concurrency()) + " cores, " + runtime_summary();
  auto measure = [&](const RungSpec& spec) {
    const int index = int(result.rungs.size());
    log_info("ladder ", index + 1, ": ", spec.name, " (petseg ", join(spec.petseg), ")");
    LadderRung rung;
    rung.name = spec.name;
    rung.flags = join(spec.petseg);
    rung.ranks = spec.ranks;
    rung.petseg = run_petseg(o, spec, work, index);
    if (o.python && result.python_note.empty()) rung.python = run_python(o, spec, work, index, result.python_note);
    log_info("  petseg ", fixed(rung.petseg.images_per_s(), 2), " img/s",
             rung.python ? ", Python " + fixed(rung.python->images_per_s(), 2) + " img/s" : std::string());
    result.rungs.push_back(rung);
  };
  for (const auto& spec : specs) measure(spec);

  // petseg's best configuration: the fastest layout measured above, plus channels_last, then bf16 autocast too.
  size_t fastest = 0;
  for (size_t i = 1; i < result.rungs.size(); ++i) {
    if (result.rungs[i].petseg.images_per_s() > result.rungs[fastest].petseg.images_per_s()) fastest = i;
  }
  const RungSpec best = extend(specs[fastest], "best: " + specs[fastest].name + " + channels_last", {"--channels-last"},
                               {"--channels-last"});
  measure(best);
  measure(extend(best, "best + bf16 autocast", {"--amp", "bf16"}, {"--amp", "bf16"}));

  if (!o.json_out.empty()) {
    json rows = json::array();
    const LadderRung& base = result.rungs.front();
    for (const auto& r : result.rungs) {
      auto side = [](const LadderSide& s, const LadderSide& b) {
        return json{{"epoch_seconds", s.epoch_seconds},
                    {"images", s.images},
                    {"images_per_s", s.images_per_s()},
                    {"data_share", s.data_share()},
                    {"speedup_vs_baseline", b.images_per_s() > 0 ? s.images_per_s() / b.images_per_s() : 0}};
      };
      json row = {{"rung", r.name}, {"flags", r.flags}, {"ranks", r.ranks}, {"petseg", side(r.petseg, base.petseg)}};
      if (r.python && base.python) {
        row["python"] = side(*r.python, *base.python);
        row["petseg_over_python"] = r.petseg.images_per_s() / r.python->images_per_s();
      }
      rows.push_back(row);
    }
    write_file_atomic(
        o.json_out,
        json{{"settings", result.settings}, {"python_note", result.python_note}, {"rungs", rows}}.dump(1) + "\n");
  }
  if (!o.svg_out.empty()) write_file_atomic(o.svg_out, ladder_svg(result));
  return result;
}

std::string format_ladder(const LadderResult& r) {
  std::ostringstream os;
  os << "optimization ladder: " << r.settings << "\n";
  if (!r.python_note.empty()) os << r.python_note << "\n";
  os << std::left << std::setw(40) << "rung" << std::right << std::setw(10) << "s/epoch" << std::setw(8) << "img/s"
     << std::setw(7) << "data" << std::setw(8) << "x base"
     << "  |" << std::setw(10) << "Python s" << std::setw(8) << "img/s" << std::setw(7) << "data" << std::setw(8)
     << "x base"
     << "  | petseg/Python\n";
  const LadderRung& base = r.rungs.front();
  double best_petseg = 0, best_python = 0, worst_ratio = 1e9, worst_data = 0;
  std::string worst_rung;
  for (size_t i = 0; i < r.rungs.size(); ++i) {
    const LadderRung& g = r.rungs[i];
    os << std::left << std::setw(40) << g.name.substr(0, 39) << std::right << std::setw(10)
       << fixed(g.petseg.epoch_seconds, 2) << std::setw(8) << fixed(g.petseg.images_per_s(), 2) << std::setw(6)
       << fixed(100 * g.petseg.data_share(), 1) << "%" << std::setw(7)
       << fixed(g.petseg.images_per_s() / base.petseg.images_per_s(), 2) << "x  |";
    best_petseg = std::max(best_petseg, g.petseg.images_per_s());
    if (i > 0) worst_data = std::max(worst_data, g.petseg.data_share());
    if (g.python && base.python) {
      const double ratio = g.petseg.images_per_s() / g.python->images_per_s();
      os << std::setw(10) << fixed(g.python->epoch_seconds, 2) << std::setw(8) << fixed(g.python->images_per_s(), 2)
         << std::setw(6) << fixed(100 * g.python->data_share(), 1) << "%" << std::setw(7)
         << fixed(g.python->images_per_s() / base.python->images_per_s(), 2) << "x  | " << fixed(ratio, 2) << "x";
      best_python = std::max(best_python, g.python->images_per_s());
      if (ratio < worst_ratio) worst_ratio = ratio, worst_rung = g.name;
    }
    os << "\n";
  }
  os << "targets:\n  every rung >= 0.97x Python: "
     << (best_python > 0
             ? fixed(worst_ratio, 3) + "x lowest (" + worst_rung + ") -> " + (worst_ratio >= 0.97 ? "met" : "NOT met")
             : std::string("no Python reference"))
     << "\n  data wait < 3% of the epoch from 2 workers on: " << fixed(100 * worst_data, 1) << "% highest -> "
     << (worst_data < 0.03 ? "met" : "NOT met") << "\n  best petseg >= 1.6x best Python rung: ";
  if (best_python > 0) {
    os << fixed(best_petseg, 2) << " vs " << fixed(best_python, 2) << " img/s = " << fixed(best_petseg / best_python, 2)
       << "x -> " << (best_petseg / best_python >= 1.6 ? "met" : "NOT met") << "\n";
  } else {
    os << "no Python reference\n";
  }
  return os.str();
}

std::string ladder_svg(const LadderResult& r) {
  const int label_w = 300, bar_w = 380, row_h = 38, top = 56, width = label_w + bar_w + 120;
  const int height = top + row_h * int(r.rungs.size()) + 30;
  double max_rate = 0;
  for (const auto& g : r.rungs) {
    max_rate = std::max(max_rate, g.petseg.images_per_s());
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
    bar(g.petseg.images_per_s(), 4, "#1b7f79");
    if (g.python) bar(g.python->images_per_s(), 20, "#a0a0a0");
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace petseg::bench
