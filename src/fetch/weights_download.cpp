// torchvision weight files fetched into torch.hub's cache under a lock (ranks of one machine share the cache),
// checked against the hash in their name, renamed into place.
#include <filesystem>
#include <string>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "fetch/digest.h"
#include "fetch/http.h"
#include "fetch/weights_cache.h"

namespace petseg::fetch::detail {

namespace fs = std::filesystem;

fs::path download_weights(const std::string& name, const std::string& base) {
  const fs::path dir = torch_hub_checkpoints();
  std::error_code ec;
  fs::create_directories(dir, ec);
  PETSEG_CHECK(!ec, "cannot create the weights cache ", dir.string(), ": ", ec.message());
  const fs::path file = dir / name;
  FileLock lock(dir / (name + ".lock"));  // another rank may be fetching it right now
  if (fs::exists(file)) return file;
  const std::string url = join_url(base, name);
  const fs::path part = file.string() + ".part";
  log_info("downloading ", url, " into ", dir.string());
  DownloadOptions options;
  options.what = name;
  download_to(url, part, options);
  const std::string prefix = hash_prefix(name);
  if (!prefix.empty()) {
    const std::string sha = sha256_file(part);
    if (sha.compare(0, prefix.size(), prefix) != 0) {
      fs::remove(part, ec);  // our own partial file
      PETSEG_FAIL("downloaded ", url, " but its SHA-256 starts with ", sha.substr(0, prefix.size()), " where the name ",
                  "says ", prefix, " (a corrupt transfer or another file); nothing was kept");
    }
  }
  fs::rename(part, file);
  return file;
}

}  // namespace petseg::fetch::detail
