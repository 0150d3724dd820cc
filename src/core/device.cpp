// Thread and device set-up, kept out of headers so only this file pays for the ATen includes.
#include "core/device.h"

#include <ATen/Parallel.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>

#include "core/check.h"
#include "core/compat.h"

namespace petseg {

int configure_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return at::get_num_threads();
}

void keep_freed_host_memory() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string(tunables).find("glibc.malloc") != std::string::npos) return;
  for (const char* v : {"MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                        "MALLOC_ARENA_MAX"}) {
    if (std::getenv(v)) return;
  }
  // No mmap'd chunks (a block glibc cannot place in its heaps still gets one: its fallback), no trim of the heaps.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
#endif
}

bool cuda_available() { return torch::cuda::is_available(); }
int cuda_device_count() { return cuda_available() ? int(torch::cuda::device_count()) : 0; }

c10::Device resolve_device(const std::string& choice, int local_rank) {
  PETSEG_CHECK(choice == "auto" || choice == "cpu" || choice == "cuda", "unknown --device \"", choice,
               "\"; valid: auto, cpu, cuda");
  if (choice == "cpu") return c10::kCPU;
  const int gpus = cuda_device_count();
  PETSEG_CHECK(choice != "cuda" || gpus > 0, "--device cuda: no CUDA device is available here; use --device cpu");
  if (gpus == 0) return c10::kCPU;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % gpus));
}

void set_current_device(c10::Device device) {
  if (!device.is_cuda()) return;
  PETSEG_CHECK(device.has_index(), "set_current_device needs a CUDA device with an index, got ", device.str());
  // c10's device guard for CUDA calls c10::cuda::SetDevice, as c10::cuda::set_device does; going through it keeps
  // this library free of a link to c10_cuda, which CPU-only libtorch builds do not have.
  c10::impl::getDeviceGuardImpl(device.type())->setDevice(device);
}

void lower_thread_priority(int nice) {
  if (nice <= 0) return;
  // On Linux a thread's nice value is its own: PRIO_PROCESS with the thread id changes only this thread.
  const id_t tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, tid);
  if (errno == 0) ::setpriority(PRIO_PROCESS, tid, std::min(19, current + nice));
}

std::string runtime_summary() {
  return detail::str_cat("libtorch ", compat::kTorchMajor, ".", compat::kTorchMinor, ", ",
                         cuda_available() ? "CUDA" : "CPU", ", ", at::get_num_threads(), " threads");
}

}  // namespace petseg
