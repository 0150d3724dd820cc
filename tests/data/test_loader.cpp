// data/loader: the same batches whatever the worker count, in order; errors that name the file; bad samples
// skipped once-warned; clean stops mid-epoch; sharding across ranks.
#include "data/loader.h"

#include <ATen/ops/equal.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/device.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/sampler.h"
#include "data/synth.h"
#include "test_data.h"
#include "test_util.h"

namespace petseg::data {
namespace {

// One small synthetic set for the whole suite.
class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SynthOptions o;
    o.count = 45;
    o.seed = 3;
    o.min_side = 60;
    o.max_side = 140;
    root_ = testing::shared_synthetic_set(o, /*prepared=*/false);
  }
  static std::shared_ptr<const SegmentationDataset> dataset(Split split = Split::kAll) {
    return std::make_shared<const SegmentationDataset>(SegmentationDataset::open(root_, split));
  }
  static LoaderOptions options(int workers) {
    LoaderOptions o;
    o.batch_size = 4;
    o.image_size = 64;
    o.num_workers = workers;
    o.seed = 17;
    return o;
  }
  static std::vector<Batch> epoch(DataLoader& loader, int64_t e) {
    std::vector<Batch> out;
    loader.start_epoch(e);
    while (auto b = loader.next()) out.push_back(std::move(*b));
    return out;
  }
  static fs::path root_;  // shared, read only: tests that break files break a copy
};
fs::path LoaderTest::root_;

TEST_F(LoaderTest, SameBatchesWhateverTheWorkerCount) {
  auto ds = dataset();
  DataLoader inline_loader(ds, options(0));
  const auto reference = epoch(inline_loader, 1);
  ASSERT_EQ(int64_t(reference.size()), inline_loader.batches_per_epoch());
  for (int workers : {1, 3}) {
    DataLoader loader(ds, options(workers));
    const auto got = epoch(loader, 1);
    ASSERT_EQ(got.size(), reference.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].index, int64_t(i));
      EXPECT_EQ(got[i].indices, reference[i].indices) << "batch " << i << ", " << workers << " workers";
      EXPECT_TRUE(at::equal(got[i].images, reference[i].images)) << "batch " << i << ", " << workers << " workers";
      EXPECT_TRUE(at::equal(got[i].masks, reference[i].masks)) << "batch " << i << ", " << workers << " workers";
    }
  }
}

TEST_F(LoaderTest, BatchesAreContiguousTensorsCoveringTheEpoch) {
  auto ds = dataset();
  DataLoader loader(ds, options(2));
  const auto batches = epoch(loader, 0);
  std::multiset<int64_t> seen;
  for (const Batch& b : batches) {
    EXPECT_TRUE(b.images.is_contiguous());
    EXPECT_EQ(b.images.scalar_type(), at::kFloat);
    EXPECT_EQ(b.masks.scalar_type(), at::kLong);
    EXPECT_EQ(b.images.size(1), 3);
    EXPECT_EQ(b.images.size(2), 64);
    EXPECT_EQ(b.masks.size(0), b.images.size(0));
    seen.insert(b.indices.begin(), b.indices.end());
    const auto* m = b.masks.data_ptr<int64_t>();
    for (int64_t i = 0; i < b.masks.numel(); ++i) ASSERT_TRUE(m[i] == 0 || m[i] == 1 || m[i] == 2 || m[i] == 255);
  }
  EXPECT_EQ(seen.size(), ds->size());
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), ds->size());
  // A new epoch is a new order.
  const auto next = epoch(loader, 1);
  EXPECT_NE(next[0].indices, batches[0].indices);
}

TEST_F(LoaderTest, RanksShareTheEpochWithoutOverlap) {
  auto ds = dataset();
  std::set<int64_t> all;
  size_t total = 0;
  for (int rank = 0; rank < 3; ++rank) {
    LoaderOptions o = options(1);
    o.rank = rank;
    o.world_size = 3;
    DataLoader loader(ds, o);
    for (const Batch& b : epoch(loader, 4)) {
      all.insert(b.indices.begin(), b.indices.end());
      total += b.indices.size();
    }
  }
  EXPECT_EQ(all.size(), ds->size());
  EXPECT_EQ(total, ds->size());  // divisible here, so no padding
}

TEST_F(LoaderTest, WorkerErrorReachesTheConsumerNamingTheFile) {
  testing::TempDir copy;
  fs::copy(root_, copy.path(), fs::copy_options::recursive);
  auto ds = std::make_shared<const SegmentationDataset>(SegmentationDataset::open(copy.path(), Split::kAll));
  const std::string victim = (*ds)[7].name;
  write_file_atomic(image_path(copy.path(), victim), std::string("this is not a jpeg"));
  for (int workers : {0, 2}) {
    LoaderOptions o = options(workers);
    o.bad_samples = BadSamplePolicy::kFail;
    o.shuffle = false;
    DataLoader loader(ds, o);
    loader.start_epoch(0);
    try {
      while (loader.next()) {
      }
      FAIL() << "the corrupt image went unnoticed with " << workers << " workers";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(victim + ".jpg"), std::string::npos) << e.what();
    }
  }
}

TEST_F(LoaderTest, BadSamplesAreSkippedWithOneWarningEach) {
  testing::TempDir copy;
  fs::copy(root_, copy.path(), fs::copy_options::recursive);
  auto ds = std::make_shared<const SegmentationDataset>(SegmentationDataset::open(copy.path(), Split::kAll));
  const std::string victim = (*ds)[5].name;
  fs::remove(trimap_path(copy.path(), victim));  // our own copy
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, const std::string& m) {
    if (level == LogLevel::kWarning) warnings.push_back(m);
  });
  DataLoader loader(ds, options(2));
  int64_t images = 0;
  for (int e = 0; e < 3; ++e) {
    for (const Batch& b : epoch(loader, e)) images += b.images.size(0);
  }
  set_log_sink(nullptr);
  EXPECT_EQ(images, 3 * int64_t(ds->size() - 1));
  EXPECT_EQ(loader.stats().skipped, 3);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(victim), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("missing"), std::string::npos) << warnings[0];
}

// Files broken in one rank's shard only: with replacement (what training uses) both ranks still get the same
// number of full batches, so a distributed run takes the same steps on every rank; the broken samples' places are
// taken by readable samples of the same shard, the same ones whatever the worker count.
TEST_F(LoaderTest, ReplacedSamplesKeepEveryRanksStepsEqual) {
  testing::TempDir copy;
  fs::copy(root_, copy.path(), fs::copy_options::recursive);
  auto ds = std::make_shared<const SegmentationDataset>(SegmentationDataset::open(copy.path(), Split::kAll));
  LoaderOptions o = options(2);
  o.world_size = 2;
  o.bad_samples = BadSamplePolicy::kReplace;
  o.drop_last = true;
  o.rank = 1;
  const std::vector<int64_t> shard1 = ShardedSampler(int64_t(ds->size()), {true, o.seed, 1, 2, false}).indices(0);
  std::set<int64_t> broken;
  for (size_t i = 0; i < shard1.size(); i += 3) {  // a third of rank 1's samples, a whole batch among them
    broken.insert(shard1[i]);
    if (i + 1 < shard1.size()) broken.insert(shard1[i + 1]);
  }
  for (int64_t b : broken) write_file_atomic(image_path(copy.path(), (*ds)[size_t(b)].name), std::string("broken"));
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, const std::string& m) {
    if (level == LogLevel::kWarning) warnings.push_back(m);
  });
  std::vector<std::vector<Batch>> per_rank;
  for (int rank : {0, 1}) {
    o.rank = rank;
    DataLoader loader(ds, o);
    per_rank.push_back(epoch(loader, 0));
    if (rank == 1) {
      EXPECT_GT(loader.stats().replaced, 0);
    }
    EXPECT_EQ(loader.stats().skipped, 0);
  }
  set_log_sink(nullptr);
  ASSERT_EQ(per_rank[0].size(), per_rank[1].size()) << "the ranks would take different numbers of steps";
  for (const Batch& b : per_rank[1]) {
    EXPECT_EQ(b.images.size(0), o.batch_size);
    for (int64_t idx : b.indices) {
      EXPECT_FALSE(broken.count(idx)) << "a broken sample was used";
      EXPECT_TRUE(std::count(shard1.begin(), shard1.end(), idx)) << "a replacement from outside the shard";
    }
  }
  EXPECT_FALSE(warnings.empty());
  EXPECT_NE(warnings[0].find("replacing sample"), std::string::npos) << warnings[0];
  // The same replacements with no workers (they depend on positions, not on thread timing).
  o.rank = 1;
  o.num_workers = 0;
  DataLoader inline_loader(ds, o);
  const auto again = epoch(inline_loader, 0);
  ASSERT_EQ(again.size(), per_rank[1].size());
  for (size_t k = 0; k < again.size(); ++k) {
    EXPECT_EQ(again[k].indices, per_rank[1][k].indices) << "batch " << k;
    EXPECT_TRUE(at::equal(again[k].images, per_rank[1][k].images)) << "batch " << k;
  }
}

TEST_F(LoaderTest, StopsCleanlyMidEpochAndRestarts) {
  auto ds = dataset();
  for (int round = 0; round < 5; ++round) {
    DataLoader loader(ds, options(3));
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
    // Destroyed with workers busy and the queue full: must join, not hang.
  }
  DataLoader loader(ds, options(2));
  loader.start_epoch(0);
  loader.next();
  loader.start_epoch(1);  // restart mid-epoch
  EXPECT_EQ(int64_t(epoch(loader, 1).size()), loader.batches_per_epoch());
  loader.stop();
  loader.stop();
}

// Pinned where a CUDA device is (the GPU machine), and said once to have no effect where there is none: keyed off
// the device, not the build (the default build is CUDA-enabled everywhere).
TEST_F(LoaderTest, PinMemoryPinsOnlyWhereThereIsACudaDevice) {
  auto ds = dataset();
  LoaderOptions o = options(1);
  o.pin_memory = true;
  DataLoader loader(ds, o);
  const bool cuda = cuda_available();
  EXPECT_EQ(loader.pinned(), cuda);
  loader.start_epoch(0);
  for (int i = 0; i < 2; ++i) {  // the second batch comes from a recycled buffer
    auto b = loader.next();
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->images.is_pinned(), cuda);
    EXPECT_EQ(b->masks.is_pinned(), cuda);
  }
}

TEST_F(LoaderTest, EvalModeResizesWithoutRandomness) {
  auto ds = dataset(Split::kTest);
  LoaderOptions o = options(2);
  o.train = false;
  o.shuffle = false;
  DataLoader a(ds, o), b(ds, o);
  const auto x = epoch(a, 0), y = epoch(b, 3);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(at::equal(x[i].images, y[i].images));
  // No padding in eval: every mask pixel is a class.
  for (const Batch& batch : x) {
    const auto* m = batch.masks.data_ptr<int64_t>();
    for (int64_t i = 0; i < batch.masks.numel(); ++i) ASSERT_LT(m[i], 3);
  }
}

TEST_F(LoaderTest, RecycledBuffersNeverOverwriteABatchStillHeld) {
  auto ds = dataset();
  DataLoader loader(ds, options(2));
  loader.start_epoch(0);
  auto first = loader.next();
  const at::Tensor kept = first->images.clone();
  std::vector<Batch> rest;
  while (auto b = loader.next()) rest.push_back(std::move(*b));
  EXPECT_TRUE(at::equal(first->images, kept));
  std::set<const void*> buffers{first->images.data_ptr()};
  for (const Batch& b : rest)
    EXPECT_TRUE(buffers.insert(b.images.data_ptr()).second) << "two held batches share memory";
}

TEST_F(LoaderTest, RejectsBadOptionsWithTheOptionName) {
  auto ds = dataset();
  LoaderOptions o = options(0);
  o.batch_size = 0;
  try {
    DataLoader loader(ds, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch-size"), std::string::npos);
  }
  o = options(-1);
  EXPECT_THROW(DataLoader(ds, o), Error);
}

}  // namespace
}  // namespace petseg::data
