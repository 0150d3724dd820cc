// One pass of the loader, timed per epoch: what `petseg loader` runs, kept in the data library so the command does
// not depend on the bench library.
#include "data/loader_pass.h"

#include <chrono>
#include <iomanip>
#include <memory>
#include <sstream>

#include "core/log.h"

namespace petseg::data {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

void run_loader_pass(const fs::path& data, Split split, const DatasetOptions& options, const LoaderOptions& loader,
                     int epochs) {
  auto dataset = std::make_shared<const SegmentationDataset>(SegmentationDataset::open(data, split, options));
  DataLoader dl(dataset, loader);
  log_info("loader: ", dataset->size(), " samples (", split_name(split), "), ", dl.batches_per_epoch(),
           " batches of ", loader.batch_size, " at ", loader.image_size, "x", loader.image_size, ", ",
           loader.num_workers, " workers", dl.pinned() ? ", pinned memory" : "");
  for (int e = 0; e < epochs; ++e) {
    const auto t0 = Clock::now();
    const double wait0 = dl.stats().wait_seconds;
    int64_t images = 0;
    dl.start_epoch(e);
    while (auto batch = dl.next()) images += batch->images.size(0);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::ostringstream line;
    line << std::fixed << std::setprecision(1) << "epoch " << e << ": " << images << " images in "
         << std::setprecision(2) << s << " s, " << std::setprecision(1) << images / s << " images/s, data wait "
         << std::setprecision(0) << 100.0 * (dl.stats().wait_seconds - wait0) / s << "%";
    log_info(line.str());
  }
  if (dl.stats().skipped) log_warning(dl.stats().skipped, " bad samples were skipped (see warnings above)");
}

}  // namespace petseg::data
