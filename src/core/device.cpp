// Thread and device set-up, kept out of headers so only this file pays for the ATen includes.
#include "core/device.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <thread>

#include "core/check.h"
#include "core/compat.h"

namespace petseg {

int configure_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return at::get_num_threads();
}

bool cuda_available() { return torch::cuda::is_available(); }

std::string runtime_summary() {
  return detail::str_cat("libtorch ", compat::kTorchMajor, ".", compat::kTorchMinor, ", ",
                         cuda_available() ? "CUDA" : "CPU", ", ", at::get_num_threads(), " threads");
}

}  // namespace petseg
