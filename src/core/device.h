// Runtime set-up shared by every command: intra-op threads (libtorch reports one until told) and the device.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace petseg {

// Sets libtorch's intra-op threads; n <= 0 means one per hardware core. Returns the number set.
int configure_threads(int n);
// glibc's malloc hands large freed blocks back to the kernel (munmap, heap trim) and page-faults them in again on the
// next allocation: a forward's activations are such blocks, every forward (docs/performance.md measures the cost).
// Keeps them: no mmap'd chunks (glibc still falls back to mmap for a block no heap can hold), no heap trim; each malloc
// arena then holds its peak until the process exits. eval, predict and an inference-only `bench model` call it;
// train does not. A no-op off glibc, and where the user set glibc's malloc tunables (GLIBC_TUNABLES with
// glibc.malloc, or a MALLOC_*_ variable): theirs stand.
void keep_freed_host_memory();
bool cuda_available();
int cuda_device_count();  // 0 without CUDA
// The device a --device choice names: "auto" is CUDA where a GPU is present, else the CPU; "cuda" without a GPU is
// an error saying so. On CUDA, `local_rank` picks the GPU (one per local rank, as under torchrun).
c10::Device resolve_device(const std::string& choice, int local_rank = 0);
// Makes `device` the process's current CUDA device (a no-op for the CPU). Call it once per process, before any CUDA
// work or process group: CUDA calls that name no device (synchronize, a Gloo rank's CUDA work) otherwise run on GPU 0
// and every rank makes a context there.
void set_current_device(c10::Device device);
// Makes the calling thread (only it) `nice` steps nicer; no-op for 0 or where the OS refuses.
void lower_thread_priority(int nice);
// "libtorch 2.11, CUDA, 2 threads" for logs and reports.
std::string runtime_summary();

}  // namespace petseg
