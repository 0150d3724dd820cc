// `petseg bench ladder`: the original project's optimization ladder re-created side by side with its Python
// pipeline (bench/python/ladder.py): baseline (0 workers, pageable memory, eager, one process) -> 8 workers ->
// + pinned memory -> + TorchScript -> + DataParallel -> + DDP; then each side's best configuration, found by
// measuring: its fastest layout with channels_last, then bf16 autocast too, and Python's torch.compile. Every rung is
// a separate training run of both, interleaved rung by rung (and repeat by repeat) in one invocation.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace petseg::bench {

struct LadderOptions {
  std::filesystem::path data;  // empty: the embedded synthetic set
  std::string backbone = "resnet101";
  std::string device = "cpu";  // cpu | cuda | auto
  int image_size = 128;
  int batch_size = 4;  // per process, as the original's --batch_size
  int steps = 6;       // per epoch and process
  int epochs = 2;      // the last one is measured; the first warms up
  int workers = 8;     // the original's best worker count
  int ranks = 2;       // DDP processes (on CUDA: at most the GPUs; 1 is a DDP world of one)
  int repeats = 1;     // runs per rung and side; the median by images/s is reported
  bool python = true;
  bool compile = true;     // Python's torch.compile rung
  // Which rungs, in order (bench/ladder_bench.cpp, parse_rungs): empty is every rung,
  // "baseline,workers,pin,torchscript,dp,ddp,cl,bf16,compile"; steps of one rung join with '+' ("workers+pin").
  std::string rungs;
  bool cudnn_benchmark = true;  // CUDA, both sides (petseg train's default; ladder.py is told the same)
  std::string python_exe;  // empty: reference_python()
  std::filesystem::path work_dir;  // run folders and logs (default: a temporary folder, removed afterwards)
  std::filesystem::path json_out, svg_out;
};

struct LadderSide {
  double epoch_seconds = 0;
  int64_t images = 0;  // over all ranks
  double data_seconds = 0;
  std::vector<double> all_images_per_s;  // every repeat
  double images_per_s() const { return epoch_seconds > 0 ? double(images) / epoch_seconds : 0; }
  double data_share() const { return epoch_seconds > 0 ? data_seconds / epoch_seconds : 0; }
};

struct LadderRung {
  std::string name;   // "baseline", "+ 8 workers", ...
  std::string petseg_flags, python_flags;
  int ranks = 1;
  std::optional<LadderSide> petseg, python;  // a side is absent where it has no such rung (torch.compile)
  std::string note;  // why a side is missing: not applicable on this machine, or the side's run failed (its error)
};

struct LadderResult {
  std::vector<LadderRung> rungs;
  std::string python_note;  // why Python is missing, if it is
  std::string settings;     // one line: model, crop, batch, steps, repeats
  std::string environment;  // JSON (bench/environment.h)
};

LadderResult run_ladder(const LadderOptions& options);
std::string format_ladder(const LadderResult& result);
// Grouped bars (images/s per rung, petseg and Python), self-contained SVG.
std::string ladder_svg(const LadderResult& result);

}  // namespace petseg::bench
