// What a training epoch shows and measures as it goes: a progress line (a bar on a terminal) and the time each
// phase of a step takes (data wait, host-to-device copy, forward, backward, optimizer).
#pragma once

#include <chrono>
#include <cstdint>

#include "report/epoch_record.h"

namespace petseg::train {

// A progress bar on a terminal, a plain log line per log interval otherwise.
class Progress {
 public:
  Progress(int64_t epoch, int64_t epochs, int64_t steps);
  void update(int64_t step, double loss, double images_per_s, double remaining_images);
  void finish();

 private:
  int64_t epoch_, epochs_, steps_;
  bool tty_;
};

// Adds the wall time since the previous lap to a phase. On CUDA the host runs ahead of the device, so the times
// are only exact when `synchronize` waits for the device at each lap (petseg does that under --profile).
class PhaseTimer {
 public:
  explicit PhaseTimer(bool synchronize_cuda) : sync_(synchronize_cuda) {}
  void start();
  void lap(double report::PhaseTimes::*phase);
  void add(double report::PhaseTimes::*phase, double seconds) { times_.*phase += seconds; }
  const report::PhaseTimes& times() const { return times_; }

 private:
  using Clock = std::chrono::steady_clock;
  bool sync_;
  Clock::time_point last_ = Clock::now();
  report::PhaseTimes times_;
};

}  // namespace petseg::train
