// torchvision weight files (torch.save of a state dict) read without Python, safely, and loaded into a module by
// name: model/torch_archive.h reads and writes the containers, model/pickle.h runs the pickle inside on a machine
// that knows only the opcodes and globals a state dict needs; this header is the loading policy.
#pragma once

#include <torch/nn/module.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/torch_archive.h"

namespace petseg::model {

struct LoadPolicy {
  std::string source_prefix;  // only keys under this prefix are used (stripped), e.g. "" or "backbone."
  std::string target_prefix;  // prepended to file keys to find the module's names, e.g. "backbone."
  std::vector<std::string> skip_on_shape_mismatch;  // prefixes replaced by transfer learning (classifier.4.)
  // File keys not used, reported as ignored (fc. of an ImageNet ResNet), whether under source_prefix or not.
  std::vector<std::string> ignore;
  bool partial = false;  // the file covers only target_prefix: module names outside it are not "missing"
};

struct LoadReport {
  int loaded = 0;
  std::vector<std::string> skipped;  // "classifier.4.weight: file [21,256,1,1], model [3,256,1,1]"
  std::vector<std::string> ignored;  // file keys deliberately unused
};

// Copies matching tensors into the module's parameters and buffers. Missing or unexpected keys and shape
// mismatches (outside skip_on_shape_mismatch) are errors naming the key and the file.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& state, const LoadPolicy& policy,
                           const std::string& file_name);

// Writes `state` as torch.save does, atomically (core/fs.h), so torch.load in Python reads it.
void save_state_dict(const StateDict& state, const std::filesystem::path& path);
StateDict module_state_dict(const torch::nn::Module& module);

}  // namespace petseg::model
