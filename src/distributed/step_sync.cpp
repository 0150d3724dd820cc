// StepSync: one collective and one host read per log interval, none in the steps between.
#include "distributed/step_sync.h"

#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>

#include <algorithm>

#include "core/check.h"

namespace petseg::distributed {

StepSync::StepSync(Communicator& comm, int64_t log_interval, int64_t steps_in_epoch, bool agree_every_step)
    : comm_(comm), log_interval_(log_interval), steps_in_epoch_(steps_in_epoch), agree_every_step_(agree_every_step) {
  PETSEG_CHECK(log_interval >= 1, "--log-interval must be >= 1, got ", log_interval);
}

bool StepSync::is_log_step(int64_t step) const {
  return (step + 1) % log_interval_ == 0 || step + 1 >= steps_in_epoch_;
}

int64_t StepSync::next_log_step(int64_t step) const {
  const int64_t next = (step / log_interval_ + 1) * log_interval_ - 1;
  return std::min(next, std::max<int64_t>(step, steps_in_epoch_ - 1));
}

StepSync::Outcome StepSync::after_step(int64_t step, const at::Tensor& interval_loss, int64_t interval_steps,
                                       bool limit_reached, bool signalled) {
  Outcome o;
  const bool alone = comm_.world_size() == 1;
  o.stop = limit_reached || (alone && signalled);
  // Every rank takes the same branch: log steps and the step limit fall on the same step everywhere.
  o.log = o.stop || is_log_step(step);
  if (!o.log) {
    if (agree_every_step_ && !alone) {  // the signal flag alone, on the host (Gloo)
      at::Tensor flag = at::full({1}, signalled ? 1.0 : 0.0, at::kDouble);
      comm_.allreduce_sum(flag);
      o.stop = comm_.to_host(flag).item<double>() > 0;
      o.log = o.stop;  // a stop reads the interval's loss too (below), as at a log step
    }
    if (!o.log) return o;
  }
  // Built on the loss's device from a host scalar (a fill, not a copy): the collective below stays on the device.
  at::Tensor sums = at::stack({interval_loss.detach().to(at::kDouble).reshape({}),
                               at::full({}, signalled ? 1.0 : 0.0, interval_loss.options().dtype(at::kDouble))});
  if (!alone) comm_.allreduce_sum(sums);
  const at::Tensor host = comm_.to_host(sums);
  const double* v = host.data_ptr<double>();
  o.mean_loss = v[0] / (double(std::max<int64_t>(1, interval_steps)) * comm_.world_size());
  o.stop = o.stop || v[1] > 0;
  return o;
}

}  // namespace petseg::distributed
