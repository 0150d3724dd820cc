// Loader throughput, petseg against the Python reference, one worker count at a time, interleaved so both see
// the same machine state.
#include "bench/data_bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "bench/environment.h"
#include "bench/python_reference.h"
#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/process.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Measured {
  int64_t images = 0;
  double seconds = 0;
  double wait_seconds = 0;
};

Measured measure_petseg(std::shared_ptr<const data::SegmentationDataset> dataset, const data::LoaderOptions& options,
                        int epochs) {
  data::DataLoader loader(std::move(dataset), options);
  Measured m;
  const auto t0 = Clock::now();
  for (int e = 0; e < epochs; ++e) {
    loader.start_epoch(e);
    while (auto batch = loader.next()) m.images += batch->images.size(0);
  }
  m.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  m.wait_seconds = loader.stats().wait_seconds;
  return m;
}

// Touches every file once so neither side pays for a cold page cache.
void warm_cache(const data::SegmentationDataset& dataset) {
  for (const auto& s : dataset.samples()) {
    for (const auto& p : {s.image, s.mask}) {
      try {
        (void)read_file(p);
      } catch (const Error&) {
      }
    }
  }
}

void write_data_json(const DataBenchOptions& options, const DataBenchResult& result, size_t samples,
                     const nlohmann::json& environment) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : result.rows) {
    nlohmann::json j = {{"workers", r.workers},
                        {"images", r.images},
                        {"petseg_images_per_s", r.petseg_images_per_s},
                        {"petseg_wait_share", r.petseg_wait_share}};
    if (r.python_images_per_s) {
      j["python_images_per_s"] = *r.python_images_per_s;
      j["ratio"] = r.petseg_images_per_s / *r.python_images_per_s;
    }
    rows.push_back(j);
  }
  const nlohmann::json doc = {{"benchmark", "data"},
                              {"image_size", options.loader.image_size},
                              {"batch_size", options.loader.batch_size},
                              {"epochs", options.epochs},
                              {"repeats", options.repeats},
                              {"samples", samples},
                              {"environment", environment},
                              {"rows", rows},
                              {"python_note", result.python_note}};
  if (options.json_out.has_parent_path()) fs::create_directories(options.json_out.parent_path());
  write_file_atomic(options.json_out, doc.dump(1) + "\n");
}

}  // namespace

DataBenchResult run_data_bench(const DataBenchOptions& options) {
  auto dataset = std::make_shared<const data::SegmentationDataset>(data::SegmentationDataset::open(options.data, options.split));
  PETSEG_CHECK(!options.workers.empty(), "--worker-counts needs at least one worker count");
  PETSEG_CHECK(options.epochs >= 1, "--epochs must be >= 1");
  PETSEG_CHECK(options.repeats >= 1, "--repeats must be >= 1");
  warm_cache(*dataset);

  DataBenchResult result;
  const nlohmann::json environment = describe_environment(options.python ? reference_python(options.python_exe) : "");
  fs::path names_file;
  bool python = options.python;
  if (!python) {
    result.python_note = "Python reference not run (--no-python)";
  } else {
    names_file = fs::temp_directory_path() / ("petseg_bench_names_" + std::to_string(::getpid()) + ".txt");
    std::string names;
    for (const auto& s : dataset->samples()) names += s.name + "\n";
    write_file_atomic(names_file, names);
  }

  for (int w : options.workers) {
    data::LoaderOptions lo = options.loader;
    lo.num_workers = w;
    DataBenchRow row;
    row.workers = w;
    std::vector<Measured> runs;
    for (int r = 0; r < options.repeats; ++r) runs.push_back(measure_petseg(dataset, lo, options.epochs));
    std::sort(runs.begin(), runs.end(),
              [](const Measured& a, const Measured& b) { return a.images / a.seconds < b.images / b.seconds; });
    const Measured& m = runs[runs.size() / 2];
    row.images = m.images;
    row.petseg_images_per_s = m.images / m.seconds;
    row.petseg_wait_share = m.wait_seconds / m.seconds;
    if (python) {
      std::vector<std::string> args = {"--data", options.data.string(), "--names", names_file.string(),
                                       "--image-size", std::to_string(lo.image_size), "--batch-size",
                                       std::to_string(lo.batch_size), "--workers", std::to_string(w), "--epochs",
                                       std::to_string(options.epochs), "--repeats", std::to_string(options.repeats),
                                       "--border", data::border_mode_name(lo.border)};
      if (lo.pin_memory) args.push_back("--pin-memory");  // both sides pin, or neither
      const ReferenceRun run = run_reference(options.python_exe, "data_bench.py", args);
      if (run.result) {
        row.python_images_per_s = run.result->at("images_per_s").get<double>();
      } else {
        python = false;  // the same would happen for every row
        result.python_note = run.skipped;
      }
    }
    log_info("bench data: ", w, " workers: petseg ", std::fixed, std::setprecision(1), row.petseg_images_per_s,
             " images/s",
             row.python_images_per_s ? detail::str_cat(", python ", *row.python_images_per_s, " images/s") : "");
    result.rows.push_back(row);
  }
  if (!names_file.empty()) fs::remove(names_file);

  if (!options.json_out.empty()) write_data_json(options, result, dataset->size(), environment);
  return result;
}

std::string format_data_bench(const DataBenchResult& result, const DataBenchOptions& options) {
  std::ostringstream os;
  os << "loader throughput, image size " << options.loader.image_size << ", batch " << options.loader.batch_size << ", "
     << options.epochs << " epochs of " << (result.rows.empty() ? 0 : result.rows[0].images / options.epochs)
     << " images, train transforms, median of " << options.repeats << " runs\n\n";
  os << std::left << std::setw(9) << "workers" << std::right << std::setw(16) << "petseg img/s" << std::setw(16)
     << "python img/s" << std::setw(16) << "petseg/python" << std::setw(18) << "vs petseg 0 w."
     << "\n";
  double base = 0;
  for (const auto& r : result.rows) {
    if (r.workers == 0) base = r.petseg_images_per_s;
  }
  os << std::fixed;
  for (const auto& r : result.rows) {
    os << std::left << std::setw(9) << r.workers << std::right << std::setw(16) << std::setprecision(1)
       << r.petseg_images_per_s;
    if (r.python_images_per_s) {
      os << std::setw(16) << *r.python_images_per_s << std::setw(15) << std::setprecision(2)
         << r.petseg_images_per_s / *r.python_images_per_s << "x";
    } else {
      os << std::setw(16) << "-" << std::setw(16) << "-";
    }
    if (base > 0) {
      os << std::setw(17) << std::setprecision(2) << r.petseg_images_per_s / base << "x";
    }
    os << "\n";
  }
  if (!result.python_note.empty()) os << "\n" << result.python_note << "\n";
  return os.str();
}

}  // namespace petseg::bench
