// One parallel loop for the whole code base: work items handed out in order to a few threads, and the first
// exception a worker throws carried back to the caller (rethrown after every thread has joined) instead of ending
// the process.
#pragma once

#include <cstddef>
#include <functional>

namespace petseg {

// Runs fn(0) ... fn(n - 1) on `threads` threads (the caller's included; <= 0: one per core). After an exception the
// remaining items are not started; the exception of the lowest failing item that ran is rethrown.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

}  // namespace petseg
