// Profiling a stretch of training as Python's torch.profiler does: the Kineto profiler records every operator (and,
// on CUDA, every kernel and copy) and writes a Chrome trace (Perfetto, chrome://tracing); a table of the operators
// that took the most time is made from that trace.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace petseg::train {

// Records from construction to save(); saving writes `trace` (a JSON Chrome trace).
class TraceRecorder {
 public:
  TraceRecorder(std::filesystem::path trace, bool cuda);
  ~TraceRecorder();  // stops recording if save() was not called (nothing is written)
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;
  void save();

 private:
  std::filesystem::path trace_;
  bool active_ = false;
};

// The `top` operators by total time in a Chrome trace: name, total ms, calls (one per line, with a header).
std::string top_ops_table(const std::filesystem::path& trace, int top);

// Floating-point operations of running `fn`, as the profiler counts them (torch.profiler's with_flops: 2 per
// multiply-add of convolutions and matrix products, 1 per element of adds and multiplies).
double count_flops(const std::function<void()>& fn);

}  // namespace petseg::train
