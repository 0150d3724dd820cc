// core/parallel: every item runs once; a worker's exception reaches the caller (it used to end the process when a
// prepare worker threw anything but a sample error).
#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace petseg {
namespace {

TEST(ParallelFor, RunsEveryItemOnceOnSeveralThreads) {
  std::vector<std::atomic<int>> runs(1000);
  std::atomic<int> threads_seen{0};
  thread_local bool counted = false;
  parallel_for(runs.size(), 4, [&](size_t i) {
    if (!counted) counted = true, ++threads_seen;
    ++runs[i];
  });
  for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
  EXPECT_GE(threads_seen.load(), 1);
  parallel_for(0, 4, [](size_t) { FAIL() << "no item to run"; });
}

TEST(ParallelFor, AWorkersExceptionReachesTheCaller) {
  std::atomic<int> ran{0};
  try {
    parallel_for(10000, 4, [&](size_t i) {
      ++ran;
      if (i == 7) throw std::runtime_error("item 7 failed");
      std::this_thread::yield();
    });
    FAIL() << "the exception was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "item 7 failed");
  }
  EXPECT_LT(ran.load(), 10000) << "items kept starting after the failure";
}

}  // namespace
}  // namespace petseg
