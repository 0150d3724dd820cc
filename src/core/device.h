// Runtime set-up shared by every command: intra-op threads (Debian's libtorch starts with one) and CUDA presence.
#pragma once

#include <string>

namespace petseg {

// Sets libtorch's intra-op threads; n <= 0 means one per hardware core. Returns the number set.
int configure_threads(int n);
bool cuda_available();
// Makes the calling thread (only it) `nice` steps nicer; no-op for 0 or where the OS refuses.
void lower_thread_priority(int nice);
// "libtorch 1.13.0, CPU, 2 threads" for logs and reports.
std::string runtime_summary();

}  // namespace petseg
