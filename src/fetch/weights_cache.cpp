// Names -> torch.hub cache files, fetched under a lock (ranks of one machine share the cache), checked, renamed.
#include "fetch/weights_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <regex>

#include "core/check.h"
#include "core/log.h"
#include "fetch/digest.h"
#include "fetch/http.h"

namespace petseg::fetch {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTorchvisionModels = "https://download.pytorch.org/models/";

// torchvision's files for the names: the ones deeplabv3_resnet50/101(weights="DEFAULT") and their
// weights_backbone default (ResNet*_Weights.IMAGENET1K_V1) load.
std::string known_file(const std::string& spec, WeightsRole role, const std::string& backbone) {
  static const std::map<std::string, std::string> coco = {{"resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth"},
                                                          {"resnet101", "deeplabv3_resnet101_coco-586e9e4e.pth"}};
  static const std::map<std::string, std::string> imagenet = {{"resnet50", "resnet50-0676ba61.pth"},
                                                              {"resnet101", "resnet101-63fe2227.pth"}};
  const auto& table = role == WeightsRole::kModel ? coco : imagenet;
  const char* alias = role == WeightsRole::kModel ? "coco" : "imagenet";
  if (spec != alias) return "";
  const auto it = table.find(backbone);
  PETSEG_CHECK(it != table.end(), "no ", alias, " weights for backbone \"", backbone, "\"");
  return it->second;
}

// torch.hub's HASH_REGEX: the name's "-<hex>." part; empty when the name has none.
std::string hash_prefix(const std::string& name) {
  static const std::regex re("-([a-f0-9]+)\\.");
  std::smatch m;
  return std::regex_search(name, m, re) ? m[1].str() : "";
}

class FileLock {
 public:
  explicit FileLock(const fs::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    PETSEG_CHECK(fd_ >= 0, "cannot create the lock file ", path.string());
    ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_;
};

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

}  // namespace

fs::path torch_hub_checkpoints() {
  if (const char* home = std::getenv("TORCH_HOME"); home && *home) return fs::path(home) / "hub" / "checkpoints";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "torch" / "hub" / "checkpoints";
  const char* user_home = std::getenv("HOME");
  return fs::path(user_home && *user_home ? user_home : ".") / ".cache" / "torch" / "hub" / "checkpoints";
}

fs::path resolve_weights(const std::string& spec, WeightsRole role, const std::string& backbone,
                         const std::string& mirror) {
  const char* option = role == WeightsRole::kModel ? "--weights" : "--backbone-weights";
  if (spec.empty() || fs::is_regular_file(spec)) return spec;
  std::string name = known_file(spec, role, backbone);
  if (name.empty()) {
    const fs::path p(spec);
    PETSEG_CHECK(!p.has_parent_path() && p.extension() == ".pth" && !hash_prefix(spec).empty(), option, " ", spec,
                 ": no such file, and not a torchvision weights name (", role == WeightsRole::kModel ? "coco" : "imagenet",
                 ", or a file name such as ", role == WeightsRole::kModel ? "deeplabv3_resnet101_coco-586e9e4e.pth"
                                                                         : "resnet101-63fe2227.pth",
                 ")");
    name = spec;
  }
  const fs::path cached = torch_hub_checkpoints() / name;
  if (fs::is_regular_file(cached)) return cached;
  std::string base = mirror;
  if (base.empty()) {
    const char* env = std::getenv("PETSEG_WEIGHTS_MIRROR");
    base = env && *env ? env : kTorchvisionModels;
  }
  return download_weights(name, base);
}

}  // namespace petseg::fetch
