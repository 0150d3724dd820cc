// Epoch-wise sample order: shuffled differently each epoch (from seed and epoch), sharded across ranks the way
// torch.utils.data.DistributedSampler does it, so every rank gets the same number of samples.
#pragma once

#include <cstdint>
#include <vector>

namespace petseg::data {

struct SamplerOptions {
  bool shuffle = true;
  uint64_t seed = 0;
  int rank = 0;
  int world_size = 1;
  // false: pad with the first indices of the permutation so all ranks are equal (complete, equal sizes);
  // true: drop the tail instead (disjoint, equal sizes).
  bool drop_last = false;
};

class ShardedSampler {
 public:
  ShardedSampler(int64_t dataset_size, SamplerOptions options);
  // Indices this rank visits in `epoch`.
  std::vector<int64_t> indices(int64_t epoch) const;
  int64_t per_rank() const { return per_rank_; }
  const SamplerOptions& options() const { return options_; }

 private:
  int64_t size_;
  SamplerOptions options_;
  int64_t per_rank_;
};

}  // namespace petseg::data
