// --weights / --backbone-weights by name, as torchvision's `weights="DEFAULT"` does: "coco" (a DeepLabV3 trained on
// COCO's VOC classes) or "imagenet" (the backbone's ImageNet ResNet) for the chosen backbone, or a torchvision file
// name (deeplabv3_resnet101_coco-586e9e4e.pth, resnet101-63fe2227.pth, ...). Resolved to a file in torch.hub's
// cache ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints): weights a user already fetched with
// Python are found there and never fetched twice; missing ones are downloaded from torchvision's server (or a
// mirror with the same file names: --mirror, $PETSEG_WEIGHTS_MIRROR) and their SHA-256 checked against the
// prefix in the name, as torch.hub's check_hash does. A path to an existing file is used as it is.
#pragma once

#include <filesystem>
#include <string>

namespace petseg::fetch {

enum class WeightsRole { kModel, kBackbone };  // --weights, --backbone-weights

// $TORCH_HOME/hub/checkpoints ($XDG_CACHE_HOME/torch, else ~/.cache/torch, when TORCH_HOME is unset).
std::filesystem::path torch_hub_checkpoints();

// The file `spec` names for `role` and `backbone`, downloaded into the cache if needed. `mirror` empty: the
// PETSEG_WEIGHTS_MIRROR environment variable, else download.pytorch.org.
std::filesystem::path resolve_weights(const std::string& spec, WeightsRole role, const std::string& backbone,
                                      const std::string& mirror = "");

}  // namespace petseg::fetch
