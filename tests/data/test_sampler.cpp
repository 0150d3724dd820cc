// data/sampler: per-epoch shuffles, and shards that are disjoint, complete and equal.
#include "data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace petseg::data {
namespace {

TEST(Sampler, EpochsDifferAndRepeatForTheSameEpoch) {
  ShardedSampler s(100, {/*shuffle=*/true, /*seed=*/3});
  EXPECT_EQ(s.indices(0), s.indices(0));
  EXPECT_NE(s.indices(0), s.indices(1));
  EXPECT_NE(s.indices(1), s.indices(2));
  auto sorted = s.indices(5);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[i], i);
  ShardedSampler other_seed(100, {true, 4});
  EXPECT_NE(s.indices(0), other_seed.indices(0));
}

TEST(Sampler, NoShuffleIsInOrder) {
  ShardedSampler s(5, {/*shuffle=*/false});
  EXPECT_EQ(s.indices(3), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(Sampler, ShardsAreDisjointCompleteAndEqual) {
  for (int world : {2, 3, 4}) {
    const int64_t n = 120;  // divisible by every world size here
    std::multiset<int64_t> all;
    for (int rank = 0; rank < world; ++rank) {
      ShardedSampler s(n, {true, 9, rank, world});
      const auto mine = s.indices(2);
      EXPECT_EQ(int64_t(mine.size()), n / world);
      all.insert(mine.begin(), mine.end());
    }
    EXPECT_EQ(all.size(), size_t(n));
    EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), size_t(n)) << "an index went to two ranks";
  }
}

TEST(Sampler, UnevenSizesPadLikeTorchOrDropTheTail) {
  const int64_t n = 10;
  const int world = 3;
  std::set<int64_t> covered;
  size_t total = 0;
  for (int rank = 0; rank < world; ++rank) {
    ShardedSampler padded(n, {true, 1, rank, world, /*drop_last=*/false});
    const auto mine = padded.indices(0);
    EXPECT_EQ(mine.size(), 4u);  // ceil(10 / 3): every rank the same
    covered.insert(mine.begin(), mine.end());
    total += mine.size();
  }
  EXPECT_EQ(covered.size(), size_t(n)) << "padding must keep every sample";
  EXPECT_EQ(total, 12u);  // two repeats, as torch's DistributedSampler
  std::set<int64_t> dropped;
  for (int rank = 0; rank < world; ++rank) {
    ShardedSampler d(n, {true, 1, rank, world, /*drop_last=*/true});
    const auto mine = d.indices(0);
    EXPECT_EQ(mine.size(), 3u);
    for (auto i : mine) EXPECT_TRUE(dropped.insert(i).second) << "index " << i << " twice";
  }
}

TEST(Sampler, RejectsBadRanks) {
  EXPECT_ANY_THROW(ShardedSampler(10, {true, 0, 2, 2}));
  EXPECT_ANY_THROW(ShardedSampler(10, {true, 0, 0, 0}));
}

}  // namespace
}  // namespace petseg::data
