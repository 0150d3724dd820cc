// The containers torch.save writes, read and written safely: the zip archive (PyTorch >= 1.6; data.pkl plus one
// record per storage) and the legacy stream (pre-1.6 torchvision checkpoints). The zip's directory is checked by
// petseg before libtorch's reader sees it, every storage's size against the file, and every tensor view against its
// storage; the pickles inside run on model/pickle.h's machine. The writer (a zip of one OrderedDict) mirrors the
// zip reader.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace petseg::model {

// Ordered (name, tensor) pairs, as the file lists them.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

StateDict read_state_dict(const std::filesystem::path& path);
// The same from bytes in memory; `name` is used in error messages.
StateDict read_state_dict(const uint8_t* data, size_t size, const std::string& name);
// Whether `data` is a zip (as torch.save and TorchScript write them) holding `record`; false for anything else.
bool zip_has_record(const uint8_t* data, size_t size, const std::string& record);

// Writes `state` as torch.save does (zip, pickle protocol 2), handing the bytes in order to `sink` (which must
// take them all: return n). Python's torch.load reads the result.
void write_state_dict(const StateDict& state, const std::function<size_t(const void*, size_t)>& sink);

}  // namespace petseg::model
