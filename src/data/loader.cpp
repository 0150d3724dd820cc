// Loader implementation: workers claim samples in order and may run at most prefetch_factor * num_workers
// batches ahead of the consumer; finished batches wait in a map keyed by batch number, so order (and content)
// never depends on which worker finished first.
#include "data/loader.h"

#include <ATen/ops/empty.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "core/device.h"
#include "core/log.h"
#include "core/random.h"

namespace petseg::data {

namespace {

bool unshared(const at::Tensor& t) { return t.use_count() == 1 && t.storage().use_count() == 1; }

}  // namespace

std::pair<at::Tensor, at::Tensor> BufferPool::acquire(int64_t batch, int size) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& pair : buffers_) {
    if (pair.first.size(0) == batch && pair.first.size(2) == size && unshared(pair.first) && unshared(pair.second)) {
      return pair;
    }
  }
  std::pair<at::Tensor, at::Tensor> pair{at::empty({batch, 3, size, size}, at::kFloat),
                                         at::empty({batch, size, size}, at::kLong)};
  if (buffers_.size() < max_buffers_) buffers_.push_back(pair);
  return pair;
}

namespace {

// A batch with its buffers allocated and its sample list set, nothing loaded yet.
Batch allocate_batch(const std::vector<int64_t>& indices, int size, bool pin, BufferPool* pool) {
  const int64_t B = static_cast<int64_t>(indices.size());
  Batch batch;
  if (pool && !pin) {
    std::tie(batch.images, batch.masks) = pool->acquire(B, size);
  } else {
    const auto opts = at::TensorOptions().pinned_memory(pin);
    batch.images = at::empty({B, 3, size, size}, opts.dtype(at::kFloat));
    batch.masks = at::empty({B, size, size}, opts.dtype(at::kLong));
  }
  batch.indices = indices;
  return batch;
}

// How many other samples of the shard a bad one may be replaced by before it is left out.
constexpr size_t kReplacementTries = 8;

// Loads one sample into `slot` of the batch; false (after warning once for its file) if it is bad under the skip or
// replace policies, throws under the fail policy.
bool load_sample(const SegmentationDataset& dataset, int64_t idx, Batch& batch, size_t slot, int64_t epoch,
                 const LoaderOptions& options, DecodedPair& pair) {
  const int S = options.image_size;
  const SegmentationSample& sample = dataset[static_cast<size_t>(idx)];
  Geometry geometry = eval_geometry(S);
  auto min_size = [&](int w, int h) {
    if (options.train) {
      geometry = train_geometry(w, h, S, mix_seed(options.seed, uint64_t(epoch), uint64_t(idx)), options.augment);
    }
    return std::make_pair(decode_min_width(geometry), decode_min_height(geometry));
  };
  try {
    load_pair(sample.image, sample.mask, pair, min_size, dataset.mask_spec(sample));
  } catch (const SampleError& e) {
    if (options.bad_samples == BadSamplePolicy::kFail) throw;
    warn_once(e.file().string(), std::string(options.bad_samples == BadSamplePolicy::kReplace ? "replacing" : "skipping") +
                                     " sample " + sample.name + ": " + e.what());
    return false;
  }
  render_sample(pair.rgb, pair.mask, geometry, dataset.mask_lut(sample, options.border),
                batch.images.data_ptr<float>() + int64_t(slot) * 3 * S * S,
                batch.masks.data_ptr<int64_t>() + int64_t(slot) * S * S);
  return true;
}

// Fills `slot`: its own sample or, under kReplace, the next readable one of the rank's shard for the epoch
// (`shard`; where this batch starts in it: `first`), recorded in batch.indices. The choice depends only on the
// epoch and the position, never on thread timing. Returns false when the slot stays empty.
bool load_into_slot(const SegmentationDataset& dataset, Batch& batch, size_t slot, int64_t epoch, const LoaderOptions& options,
                    const std::vector<int64_t>& shard, size_t first, DecodedPair& pair) {
  if (load_sample(dataset, batch.indices[slot], batch, slot, epoch, options, pair)) return true;
  if (options.bad_samples != BadSamplePolicy::kReplace || shard.size() < 2) return false;
  const size_t position = first + slot;
  for (size_t k = 1; k <= std::min(kReplacementTries, shard.size() - 1); ++k) {
    const int64_t candidate = shard[(position + k) % shard.size()];
    if (load_sample(dataset, candidate, batch, slot, epoch, options, pair)) {
      batch.indices[slot] = candidate;
      return true;
    }
  }
  return false;
}

// Counts the replaced samples (their index differs from the planned one) and closes the gaps left by skipped ones,
// keeping order.
void compact(Batch& batch, const std::vector<char>& ok, const std::vector<int64_t>& planned) {
  for (size_t i = 0; i < ok.size(); ++i) batch.replaced += ok[i] && batch.indices[i] != planned[i];
  const int64_t image_numel = batch.images[0].numel(), mask_numel = batch.masks[0].numel();
  float* images = batch.images.data_ptr<float>();
  int64_t* masks = batch.masks.data_ptr<int64_t>();
  std::vector<int64_t> kept;
  for (size_t i = 0; i < ok.size(); ++i) {
    if (!ok[i]) continue;
    const int64_t to = static_cast<int64_t>(kept.size());
    if (to != int64_t(i)) {
      std::copy_n(images + int64_t(i) * image_numel, image_numel, images + to * image_numel);
      std::copy_n(masks + int64_t(i) * mask_numel, mask_numel, masks + to * mask_numel);
    }
    kept.push_back(batch.indices[i]);
  }
  batch.skipped = static_cast<int>(ok.size() - kept.size());
  if (batch.skipped) {
    batch.images = batch.images.narrow(0, 0, int64_t(kept.size()));
    batch.masks = batch.masks.narrow(0, 0, int64_t(kept.size()));
    batch.indices = std::move(kept);
  }
}

}  // namespace

Batch load_batch(const SegmentationDataset& dataset, const std::vector<int64_t>& indices, int64_t epoch,
                 const LoaderOptions& options, bool pin, BufferPool* pool, const std::vector<int64_t>& shard,
                 size_t first) {
  Batch batch = allocate_batch(indices, options.image_size, pin, pool);
  std::vector<char> ok(indices.size());
  DecodedPair pair;
  for (size_t i = 0; i < indices.size(); ++i) {
    ok[i] = load_into_slot(dataset, batch, i, epoch, options, shard, first, pair);
  }
  compact(batch, ok, indices);
  return batch;
}

// Workers take one sample at a time, in order (batch k, slot j), so every worker helps finish the oldest batch
// and none idles at the end of an epoch while another builds a whole batch alone. The worker that finishes a
// batch's last sample closes it and hands it over.
struct DataLoader::Impl {
  struct Pending {
    Batch batch;
    std::vector<char> ok;
    size_t remaining = 0;
    std::exception_ptr error;
  };

  std::shared_ptr<const SegmentationDataset> dataset;
  LoaderOptions options;
  ShardedSampler sampler;
  bool pin = false;
  BufferPool pool;

  int64_t epoch = -1;
  std::vector<int64_t> shard;                 // this rank's samples of the current epoch, in order
  std::vector<std::vector<int64_t>> batches;  // sample indices per batch of the current epoch
  int64_t next_out = 0;                       // next batch number the consumer gets
  LoaderStats stats;

  // Worker state, guarded by mutex.
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::thread> workers;
  int64_t claim_batch = 0;
  size_t claim_slot = 0;
  bool stopping = false;
  std::map<int64_t, Pending> pending;  // node-based: a Pending never moves while workers fill it
  std::map<int64_t, Batch> ready;
  std::map<int64_t, std::exception_ptr> failed;

  Impl(std::shared_ptr<const SegmentationDataset> d, LoaderOptions o)
      : dataset(std::move(d)),
        options(o),
        sampler(static_cast<int64_t>(dataset->size()),
                SamplerOptions{o.shuffle, o.seed, o.rank, o.world_size, /*drop_last=*/false}),
        // The queue, the batch the consumer holds, the one it just dropped and one per worker in flight.
        pool(size_t(std::max(1, o.prefetch_factor) * o.num_workers + o.num_workers + 3)) {}

  int64_t capacity() const { return int64_t(std::max(1, options.prefetch_factor)) * options.num_workers; }

  void worker_loop() {
    DecodedPair pair;
    for (;;) {
      int64_t k;
      size_t j;
      Pending* p;
      {
        std::unique_lock<std::mutex> lock(mutex);
        const int64_t n = int64_t(batches.size());
        cv.wait(lock, [&] { return stopping || claim_batch >= n || claim_batch < next_out + capacity(); });
        if (stopping || claim_batch >= n) return;
        k = claim_batch;
        j = claim_slot++;
        if (claim_slot == batches[k].size()) {
          ++claim_batch;
          claim_slot = 0;
        }
        auto it = pending.find(k);
        if (it == pending.end()) {
          Pending fresh;
          fresh.batch = allocate_batch(batches[k], options.image_size, pin, &pool);
          fresh.batch.index = k;
          fresh.ok.assign(batches[k].size(), 0);
          fresh.remaining = batches[k].size();
          it = pending.emplace(k, std::move(fresh)).first;
        }
        p = &it->second;
      }
      bool ok = false;
      std::exception_ptr error;
      try {
        ok = load_into_slot(*dataset, p->batch, j, epoch, options, shard, size_t(k) * options.batch_size, pair);
      } catch (...) {
        error = std::current_exception();
      }
      std::unique_lock<std::mutex> lock(mutex);
      p->ok[j] = ok;
      if (error && !p->error) p->error = error;
      if (--p->remaining > 0) continue;
      Pending done = std::move(*p);
      pending.erase(k);
      lock.unlock();
      if (!done.error) compact(done.batch, done.ok, batches[k]);
      lock.lock();
      if (done.error) {
        failed[k] = done.error;
      } else {
        ready.emplace(k, std::move(done.batch));
      }
      lock.unlock();
      cv.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    pending.clear();
    ready.clear();
    failed.clear();
    stopping = false;
  }
};

DataLoader::DataLoader(std::shared_ptr<const SegmentationDataset> dataset, LoaderOptions options) {
  PETSEG_CHECK(dataset && dataset->size() > 0, "the data loader needs a non-empty data set");
  PETSEG_CHECK(options.batch_size >= 1, "--batch-size must be >= 1, got ", options.batch_size);
  PETSEG_CHECK(options.image_size >= 16 && options.image_size <= 4096, "--image-size must be in [16, 4096], got ",
               options.image_size);
  PETSEG_CHECK(options.num_workers >= 0 && options.num_workers <= 256, "--num-workers must be in [0, 256], got ",
               options.num_workers);
  PETSEG_CHECK(options.augment.min_scale > 0 && options.augment.min_scale <= options.augment.max_scale,
               "bad scale range [", options.augment.min_scale, ", ", options.augment.max_scale, "]");
  impl_ = std::make_unique<Impl>(std::move(dataset), options);
  if (options.pin_memory) {
    impl_->pin = cuda_available();
    if (!impl_->pin) warn_once("pin_memory", "--pin-memory has no effect here: no CUDA device is available");
  }
}

DataLoader::~DataLoader() { stop(); }

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  Impl& m = *impl_;
  m.stop_workers();
  m.epoch = epoch;
  m.shard = m.sampler.indices(epoch);
  const std::vector<int64_t>& order = m.shard;
  m.batches.clear();
  const size_t B = static_cast<size_t>(m.options.batch_size);
  for (size_t i = 0; i < order.size(); i += B) {
    if (i + B > order.size() && m.options.drop_last) break;
    m.batches.emplace_back(order.begin() + i, order.begin() + std::min(order.size(), i + B));
  }
  PETSEG_CHECK(first_batch >= 0 && first_batch <= int64_t(m.batches.size()), "cannot resume at batch ", first_batch,
               " of an epoch of ", m.batches.size());
  m.next_out = first_batch;
  m.claim_batch = first_batch;
  m.claim_slot = 0;
  for (int w = 0; w < m.options.num_workers; ++w) {
    m.workers.emplace_back([&m] {
      lower_thread_priority(m.options.worker_nice);
      m.worker_loop();
    });
  }
}

std::optional<Batch> DataLoader::next() {
  Impl& m = *impl_;
  PETSEG_CHECK(m.epoch >= 0, "DataLoader::next() called before start_epoch()");
  while (m.next_out < int64_t(m.batches.size())) {
    const int64_t k = m.next_out;
    const auto t0 = std::chrono::steady_clock::now();
    Batch batch;
    if (m.options.num_workers == 0) {
      ++m.next_out;
      batch = load_batch(*m.dataset, m.batches[k], m.epoch, m.options, m.pin, &m.pool, m.shard,
                         size_t(k) * m.options.batch_size);
      batch.index = k;
    } else {
      std::unique_lock<std::mutex> lock(m.mutex);
      m.cv.wait(lock, [&] { return m.ready.count(k) || m.failed.count(k); });
      ++m.next_out;
      if (auto f = m.failed.find(k); f != m.failed.end()) {
        std::exception_ptr error = f->second;
        m.failed.erase(f);
        lock.unlock();
        m.cv.notify_all();
        std::rethrow_exception(error);
      }
      auto it = m.ready.find(k);
      batch = std::move(it->second);
      m.ready.erase(it);
      lock.unlock();
      m.cv.notify_all();
    }
    m.stats.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.stats.skipped += batch.skipped;
    m.stats.replaced += batch.replaced;
    if (batch.indices.empty()) continue;  // every sample of this batch was bad
    ++m.stats.batches;
    m.stats.samples += static_cast<int64_t>(batch.indices.size());
    return batch;
  }
  return std::nullopt;
}

void DataLoader::stop() {
  if (impl_) impl_->stop_workers();
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = impl_->sampler.per_rank(), B = impl_->options.batch_size;
  return impl_->options.drop_last ? n / B : (n + B - 1) / B;
}

int64_t DataLoader::samples_per_epoch() const { return impl_->sampler.per_rank(); }
bool DataLoader::pinned() const { return impl_->pin; }
LoaderStats DataLoader::stats() const { return impl_->stats; }
const LoaderOptions& DataLoader::options() const { return impl_->options; }

}  // namespace petseg::data
