// A model by the names a run keeps: torchvision's model and weight names (coco, imagenet, a file name) resolved to
// files in this host's torch.hub cache (downloaded from a mirror if needed), what was loaded and replaced logged.
#pragma once

#include <string>

#include "model/factory.h"

namespace petseg::model {

BuiltSegmentationModel build_named_model(ModelConfig config, const std::string& mirror);

}  // namespace petseg::model
