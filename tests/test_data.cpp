// The tests' shared synthetic data sets, made once per build.
#include "test_data.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "core/check.h"
#include "core/fs.h"

namespace petseg::testing {
namespace fs = std::filesystem;

namespace {

// A name for the set from everything that shapes it.
std::string key_of(const data::SynthOptions& o, bool prepared) {
  const std::string text = o.layout + "|" + std::to_string(o.count) + "|" + std::to_string(o.seed) + "|" +
                           std::to_string(o.min_side) + "|" + std::to_string(o.max_side) + "|" +
                           std::to_string(o.junk) + std::to_string(o.split_files) + std::to_string(o.classes_file) +
                           std::to_string(o.rgb_masks) + std::to_string(prepared);
  return o.layout + "-" + std::to_string(o.count) + "-" + std::to_string(std::hash<std::string>{}(text) % 1000000007);
}

}  // namespace

fs::path shared_synthetic_set(data::SynthOptions options, bool prepared) {
  const fs::path cache = PETSEG_TEST_DATA_CACHE;
  fs::create_directories(cache);
  const fs::path dir = cache / key_of(options, prepared);
  const fs::path done = dir / ".made-by-the-tests";
  FileLock lock(cache / ".lock");
  if (fs::exists(done)) return dir;
  std::error_code ec;
  fs::remove_all(dir, ec);  // a set a killed test process left half made (the tests' own folder)
  options.out = dir;
  data::synthesize(options);
  if (prepared) {
    data::PrepareOptions p;
    p.layout = options.layout;
    if (options.rgb_masks) p.class_colors = dir / data::kSynthClassColorsFile;
    data::prepare_dataset(dir, p);
  }
  write_file_atomic(done, std::string("ok\n"));
  return dir;
}

}  // namespace petseg::testing
