// Sharded, per-epoch shuffled sampler (Fisher-Yates on a counter-based generator).
#include "data/sampler.h"

#include <numeric>
#include <utility>

#include "core/check.h"
#include "core/random.h"

namespace petseg::data {

ShardedSampler::ShardedSampler(int64_t dataset_size, SamplerOptions options) : size_(dataset_size), options_(options) {
  PETSEG_CHECK(dataset_size >= 0, "dataset size must be >= 0, got ", dataset_size);
  PETSEG_CHECK(options.world_size >= 1, "world size must be >= 1, got ", options.world_size);
  PETSEG_CHECK(options.rank >= 0 && options.rank < options.world_size, "rank ", options.rank,
               " is outside the world of ", options.world_size);
  const int64_t w = options.world_size;
  per_rank_ = options.drop_last ? size_ / w : (size_ + w - 1) / w;
}

std::vector<int64_t> ShardedSampler::indices(int64_t epoch) const {
  std::vector<int64_t> order(size_);
  std::iota(order.begin(), order.end(), 0);
  if (options_.shuffle) {
    Rng rng(mix_seed(options_.seed, uint64_t(epoch), 0x5a3b1e));
    for (int64_t i = size_ - 1; i > 0; --i) std::swap(order[i], order[rng.randint(0, i)]);
  }
  const int64_t w = options_.world_size;
  const int64_t total = per_rank_ * w;
  if (size_ > 0) {
    for (int64_t i = 0; int64_t(order.size()) < total; ++i) order.push_back(order[i % size_]);
  }
  order.resize(total);
  std::vector<int64_t> mine;
  mine.reserve(per_rank_);
  for (int64_t i = options_.rank; i < total; i += w) mine.push_back(order[i]);
  return mine;
}

}  // namespace petseg::data
