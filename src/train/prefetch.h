// Items made on worker threads and handed over in order, at most a bounded number ahead of the consumer: eval's
// samples at sizes of their own (the data loader's batches all have one square size).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "core/device.h"

namespace petseg::train {

template <class T>
class OrderedPrefetch {
 public:
  // make(0) ... make(count - 1) on `workers` threads (0: on the consumer's thread, when next() asks), each at most
  // 2 * workers items ahead of the consumer, running `nice` steps nicer than it (the loader's reason: a worker that
  // preempts a compute thread stalls it).
  OrderedPrefetch(size_t count, int workers, std::function<T(size_t)> make, int nice = 10)
      : count_(count), make_(std::move(make)), ahead_(2 * size_t(std::max(workers, 0))) {
    for (int i = 0; i < workers; ++i) {
      threads_.emplace_back([this, nice] {
        lower_thread_priority(nice);
        work();
      });
    }
  }
  ~OrderedPrefetch() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  OrderedPrefetch(const OrderedPrefetch&) = delete;
  OrderedPrefetch& operator=(const OrderedPrefetch&) = delete;

  // The next item in order, nullopt after the last; rethrows what making it threw.
  std::optional<T> next() {
    if (consumed_ >= count_) return std::nullopt;
    if (threads_.empty()) return make_(consumed_++);
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return done_.count(consumed_) > 0; });
    auto node = done_.extract(consumed_++);
    lock.unlock();
    changed_.notify_all();
    if (node.mapped().second) std::rethrow_exception(node.mapped().second);
    return std::move(node.mapped().first);
  }

 private:
  void work() {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || claimed_ >= count_ || claimed_ < consumed_ + ahead_; });
      if (stop_ || claimed_ >= count_) return;
      const size_t i = claimed_++;
      lock.unlock();
      std::pair<std::optional<T>, std::exception_ptr> result;
      try {
        result.first = make_(i);
      } catch (...) {
        result.second = std::current_exception();
      }
      lock.lock();
      done_.emplace(i, std::move(result));
      lock.unlock();
      changed_.notify_all();
    }
  }

  const size_t count_;
  const std::function<T(size_t)> make_;
  const size_t ahead_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t claimed_ = 0;
  size_t consumed_ = 0;  // read by workers under the mutex, written by the consumer under it (or with no workers)
  bool stop_ = false;
  std::map<size_t, std::pair<std::optional<T>, std::exception_ptr>> done_;
  std::vector<std::thread> threads_;
};

}  // namespace petseg::train
