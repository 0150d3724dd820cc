// Progress output and phase timing of the training loop.
#include "train/progress.h"

#include <torch/cuda.h>
#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <sstream>
#include <string>

#include "core/log.h"

namespace petseg::train {

Progress::Progress(int64_t epoch, int64_t epochs, int64_t steps)
    : epoch_(epoch), epochs_(epochs), steps_(steps), tty_(::isatty(STDERR_FILENO) == 1) {}

void Progress::update(int64_t step, double loss, double images_per_s, double remaining_images) {
  const double eta = images_per_s > 0 ? remaining_images / images_per_s : 0;
  std::ostringstream os;
  os << std::fixed << "epoch " << epoch_ + 1 << "/" << epochs_;
  if (tty_) {
    const int width = 24, done = int(width * step / std::max<int64_t>(1, steps_));
    os << " [" << std::string(done, '#') << std::string(width - done, '.') << "]";
  }
  os << " step " << step << "/" << steps_ << " loss " << std::setprecision(4) << loss << " " << std::setprecision(1)
     << images_per_s << " img/s ETA " << int(eta) / 60 << ":" << std::setw(2) << std::setfill('0') << int(eta) % 60;
  if (tty_) {
    std::fprintf(stderr, "\r%s\033[K", os.str().c_str());
    std::fflush(stderr);
  } else {
    log_info(os.str());
  }
}

void Progress::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

void PhaseTimer::start() {
  if (sync_) torch::cuda::synchronize();
  last_ = Clock::now();
}

void PhaseTimer::lap(double report::PhaseTimes::*phase) {
  if (sync_) torch::cuda::synchronize();
  const auto now = Clock::now();
  times_.*phase += std::chrono::duration<double>(now - last_).count();
  last_ = now;
}

}  // namespace petseg::train
