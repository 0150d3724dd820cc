// torchvision weight files (torch.save of a state dict) read without Python, safely: the pickle inside is run by
// a small interpreter that knows only the opcodes a state dict uses and only the globals it needs
// (collections.OrderedDict, torch._utils._rebuild_tensor_v2, the storage types). Anything else is refused before
// any code could run; sizes and offsets are checked against the file. Reads the zip format (PyTorch >= 1.6) and
// the legacy format older torchvision checkpoints were written in.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

namespace petseg::model {

// Ordered (name, tensor) pairs, as the file lists them.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

StateDict read_state_dict(const std::filesystem::path& path);
// The same from bytes in memory; `name` is used in error messages.
StateDict read_state_dict(const uint8_t* data, size_t size, const std::string& name);
// Whether `data` is a zip (as torch.save and TorchScript write them) holding `record`; false for anything else.
bool zip_has_record(const uint8_t* data, size_t size, const std::string& record);

struct LoadPolicy {
  std::string source_prefix;  // only keys under this prefix are used (stripped), e.g. "" or "backbone."
  std::string target_prefix;  // prepended to file keys to find the module's names, e.g. "backbone."
  std::vector<std::string> skip_on_shape_mismatch;  // prefixes replaced by transfer learning (classifier.4.)
  std::vector<std::string> ignore;                  // file keys not used (fc. of an ImageNet ResNet)
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

// Writes `state` as torch.save does (zip, pickle protocol 2), so torch.load in Python reads it.
void save_state_dict(const StateDict& state, const std::filesystem::path& path);
// The same bytes, handed in order to `sink` (which must take them all: return n).
void write_state_dict(const StateDict& state, const std::function<size_t(const void*, size_t)>& sink);
StateDict module_state_dict(const torch::nn::Module& module);

}  // namespace petseg::model
