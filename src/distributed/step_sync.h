// What the ranks of a training loop agree on after each step (log now? stop now? the interval's loss), decided with
// no host synchronisation between log intervals: the GPU hygiene rule for DDP steps (README.md, "Distributed training").
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>

#include "distributed/communicator.h"

namespace petseg::distributed {

class StepSync {
 public:
  // Log steps are every `log_interval` steps of an epoch of `steps_in_epoch`, and its last step.
  // `agree_every_step`: a signal is agreed on after every step, not only at log steps. For Gloo, whose collectives
  // block the host anyway: a stop then comes within one step (torchrun's agent kills 30 s after its SIGTERM, and a
  // CPU step can take seconds). NCCL runs keep the host free between log steps.
  StepSync(Communicator& comm, int64_t log_interval, int64_t steps_in_epoch, bool agree_every_step = false);

  struct Outcome {
    bool log = false;        // the loss was read (mean_loss)
    bool stop = false;       // every rank stops after this step
    double mean_loss = NAN;  // the interval's loss, averaged over its steps and over ranks
  };
  // After step `step` (0-based in the epoch). `interval_loss` (a scalar on the run's device) sums the losses of the
  // `interval_steps` steps since the last log step. `limit_reached` (a step limit: every rank reaches it at the same
  // step) stops at once, no collective needed. `signalled` (SIGINT/SIGTERM, which may reach one rank only) stops
  // every rank together at the next log step (in one process: at once). At a log step, or a stop, the ranks sum
  // [loss, signals] in one collective and read it on the host: the only host sync of an interval.
  Outcome after_step(int64_t step, const at::Tensor& interval_loss, int64_t interval_steps, bool limit_reached,
                     bool signalled);
  bool is_log_step(int64_t step) const;
  // The first log step at or after `step`: where a signal seen at `step` stops the ranks.
  int64_t next_log_step(int64_t step) const;

 private:
  Communicator& comm_;
  int64_t log_interval_, steps_in_epoch_;
  bool agree_every_step_;
};

}  // namespace petseg::distributed
