// --weights / --backbone-weights by name, as torchvision's `weights="DEFAULT"` does: "coco" (the model trained on
// COCO's VOC classes) or "imagenet" (the backbone's ImageNet classifier) for the chosen model, or a torchvision file
// name (deeplabv3_resnet101_coco-586e9e4e.pth, mobilenet_v3_large-8738ca79.pth, ...). Resolved to a file in
// torch.hub's cache ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints): weights a user already
// fetched with Python are found there and never fetched twice (also in a build without downloads); missing ones are
// downloaded from torchvision's server (or a mirror with the same file names: --mirror, $PETSEG_WEIGHTS_MIRROR) and
// their SHA-256 checked against the prefix in the name, as torch.hub's check_hash does. A path to an existing file
// is used as it is.
#pragma once

#include <filesystem>
#include <string>

namespace petseg::fetch {

enum class WeightsRole { kModel, kBackbone };  // --weights ("coco"), --backbone-weights ("imagenet")

// What the role's alias names for one model or backbone: torchvision's file, as model/registry.h lists it
// (ModelInfo::coco_weights, BackboneInfo::imagenet_weights).
struct NamedWeights {
  std::string owner;  // "lraspp_mobilenet_v3_large", "mobilenet_v3_large": named in errors
  std::string file;   // "lraspp_mobilenet_v3_large-d234d4ea.pth"; empty: torchvision publishes none
};

// $TORCH_HOME/hub/checkpoints ($XDG_CACHE_HOME/torch, else ~/.cache/torch, when TORCH_HOME is unset).
std::filesystem::path torch_hub_checkpoints();

// The file `spec` names (empty stays empty), downloaded into the cache if needed. `mirror` empty: the
// PETSEG_WEIGHTS_MIRROR environment variable, else download.pytorch.org.
std::filesystem::path resolve_weights(const std::string& spec, WeightsRole role, const NamedWeights& named,
                                      const std::string& mirror = "");

namespace detail {
// torch.hub's HASH_REGEX: the name's "-<hex>." part; empty when the name has none.
std::string hash_prefix(const std::string& name);
// Fetches base/name into the cache under a lock (ranks of one machine share it), checks the SHA-256 against the
// name's prefix and renames it into place (weights_download.cpp; a build without downloads says why it cannot).
std::filesystem::path download_weights(const std::string& name, const std::string& base);
}  // namespace detail

}  // namespace petseg::fetch
