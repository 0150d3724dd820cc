// Names -> torch.hub cache files; what is missing there is downloaded (weights_download.cpp).
#include "fetch/weights_cache.h"

#include "core/fs.h"

#include <cstdlib>
#include <map>
#include <regex>

#include "core/check.h"

namespace petseg::fetch {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTorchvisionModels = "https://download.pytorch.org/models/";

const char* alias_of(WeightsRole role) { return role == WeightsRole::kModel ? "coco" : "imagenet"; }

}  // namespace

namespace detail {

std::string hash_prefix(const std::string& name) {
  static const std::regex re("-([a-f0-9]+)\\.");
  std::smatch m;
  return std::regex_search(name, m, re) ? m[1].str() : "";
}

}  // namespace detail

fs::path torch_hub_checkpoints() { return user_cache_dir("TORCH_HOME", "torch") / "hub" / "checkpoints"; }

fs::path resolve_weights(const std::string& spec, WeightsRole role, const NamedWeights& named,
                         const std::string& mirror) {
  const char* option = role == WeightsRole::kModel ? "--weights" : "--backbone-weights";
  if (spec.empty() || fs::is_regular_file(spec)) return spec;
  std::string name = spec;
  if (spec == alias_of(role)) {
    PETSEG_CHECK(!named.file.empty(), option, " ", spec, ": torchvision has no ", spec, " weights for ", named.owner);
    name = named.file;
  } else {
    const fs::path p(spec);
    const std::string example = !named.file.empty()           ? named.file
                                : role == WeightsRole::kModel ? "deeplabv3_resnet101_coco-586e9e4e.pth"
                                                              : "resnet101-63fe2227.pth";
    PETSEG_CHECK(!p.has_parent_path() && p.extension() == ".pth" && !detail::hash_prefix(spec).empty(), option, " ",
                 spec, ": no such file, and not a torchvision weights name (", alias_of(role),
                 ", or a file name such as ", example, ")");
  }
  const fs::path cached = torch_hub_checkpoints() / name;
  if (fs::is_regular_file(cached)) return cached;
  std::string base = mirror;
  if (base.empty()) {
    const char* env = std::getenv("PETSEG_WEIGHTS_MIRROR");
    base = env && *env ? env : kTorchvisionModels;
  }
  return detail::download_weights(name, base);
}

}  // namespace petseg::fetch
