// The data loader: a sharded, per-epoch shuffled sampler; N worker threads that decode and transform samples
// straight into the batch buffers, up to prefetch_factor * N batches ahead of the consumer; batches delivered in
// order as one contiguous (images, masks) tensor pair, in page-locked memory with --pin-memory on CUDA builds.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "data/dataset.h"
#include "data/oxford_pets.h"
#include "data/sampler.h"
#include "data/transforms.h"

namespace petseg::data {

enum class BadSamplePolicy {
  kSkip,     // leave the sample out of its batch, warn once per file (evaluation: every readable sample once)
  kReplace,  // put another sample of this rank's shard in its place (training: full batches, so every rank of a
             // distributed run takes the same steps whatever breaks where); skipped when none of those loads either
  kFail,     // raise the error (naming the file) at the consumer
};

// How a loader runs, apart from what it loads: the execution side of a training run (train/config.h's
// ExecOptions embeds it), free to change between the starts of one run.
struct WorkerOptions {
  int num_workers = 0;      // 0: load inline on the consumer's thread
  int prefetch_factor = 2;  // batches queued per worker
  bool pin_memory = false;
  // Workers run this much nicer than the training threads (Linux, per thread; 0 keeps their priority): with more
  // threads than cores, a worker that preempts a compute thread stalls every OpenMP barrier of the step, while a
  // nicer one only fills the cores' idle time.
  int worker_nice = 10;
};

struct LoaderOptions : WorkerOptions {
  int batch_size = 8;
  int image_size = 256;
  bool train = true;  // random scale/crop/flip; false: resize to image_size x image_size
  bool shuffle = true;
  bool drop_last = false;  // drop the last incomplete batch
  uint64_t seed = 0;
  int rank = 0;
  int world_size = 1;
  BorderMode border = BorderMode::kClass;  // how the pets' trimap border is mapped (other layouts: unused)
  AugmentOptions augment;
  BadSamplePolicy bad_samples = BadSamplePolicy::kSkip;
};

struct Batch {
  at::Tensor images;             // [B,3,S,S] float32, ImageNet-normalized
  at::Tensor masks;              // [B,S,S] int64 class indices, kIgnoreIndex for padding
  std::vector<int64_t> indices;  // data set indices of the samples, in batch order
  int64_t index = 0;             // batch number within the epoch
  int skipped = 0;               // bad samples left out of this batch
  int replaced = 0;              // bad samples replaced by others of the shard (kReplace)
};

struct LoaderStats {
  int64_t batches = 0;
  int64_t samples = 0;
  int64_t skipped = 0;
  int64_t replaced = 0;
  double wait_seconds = 0;  // time next() spent waiting for a batch (the consumer's data wait)
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const SegmentationDataset> dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts (or restarts) an epoch: a new shuffle, workers begin filling the queue. `first_batch` > 0 resumes an
  // interrupted epoch: the batches before it are never loaded, the rest are exactly those of a full epoch.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch in order, or nullopt when the epoch is done. Rethrows a worker's error (naming the file).
  std::optional<Batch> next();
  // Stops the workers mid-epoch; safe to call at any time.
  void stop();

  int64_t batches_per_epoch() const;
  int64_t samples_per_epoch() const;
  bool pinned() const;
  LoaderStats stats() const;
  const LoaderOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Batch buffers recycled once nobody else holds them: fresh 10-20 MB tensors per batch cost a page fault and a
// zeroed page per 4 KiB, which is a fifth of the loader's time. Pinned buffers are never pooled here: CUDA's
// host allocator already caches them and knows when an asynchronous copy from them has finished.
class BufferPool {
 public:
  explicit BufferPool(size_t max_buffers) : max_buffers_(max_buffers) {}
  // A pair of [B,3,S,S] float and [B,S,S] int64 tensors that no one else references.
  std::pair<at::Tensor, at::Tensor> acquire(int64_t batch, int size);

 private:
  std::mutex mutex_;
  std::vector<std::pair<at::Tensor, at::Tensor>> buffers_;
  size_t max_buffers_;
};

// Decodes, transforms and collates the given samples into one batch on the calling thread (what --num-workers 0
// does). `pool` may be null (fresh buffers). Under kReplace a bad sample is replaced by the next readable one of
// `shard` (the rank's samples of the epoch) after position `first + slot`.
Batch load_batch(const SegmentationDataset& dataset, const std::vector<int64_t>& indices, int64_t epoch,
                 const LoaderOptions& options, bool pin, BufferPool* pool = nullptr,
                 const std::vector<int64_t>& shard = {}, size_t first = 0);

}  // namespace petseg::data
