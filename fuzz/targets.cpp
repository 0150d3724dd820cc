// The fuzzed entry points (see targets.h).
#include "targets.h"

#include <ATen/ops/ones.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/sgd.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/check.h"
#include "data/oxford_pets.h"
#include "fetch/archive.h"
#include "model/batchnorm.h"
#include "model/weights.h"
#include "train/checkpoint.h"

namespace petseg::fuzz {

void weights(const uint8_t* data, size_t size) {
  try {
    const model::StateDict sd = model::read_state_dict(data, size, "fuzz.pth");
    for (const auto& [name, tensor] : sd) {
      if (tensor.numel() > 0) (void)tensor.sum().item<double>();  // every element must be readable
    }
  } catch (const Error&) {
  }
}

void image(const uint8_t* data, size_t size) {
  // [1 byte flags][4 bytes image length][image bytes][trimap bytes]
  if (size < 5) return;
  const uint8_t flags = data[0];
  uint32_t n = uint32_t(data[1]) | uint32_t(data[2]) << 8 | uint32_t(data[3]) << 16 | uint32_t(data[4]) << 24;
  data += 5;
  size -= 5;
  n = uint32_t(std::min<size_t>(n, size));
  data::DecodedPair pair;
  data::MinSizeFn half;
  if (flags & 1) half = [](int w, int h) { return std::pair<int, int>(w / 4, h / 4); };  // DCT-scaled decoding
  try {
    data::decode_pair_image(data, n, "fuzz.jpg", pair, half);
    data::decode_pair_trimap(data + n, size - n, "fuzz.png", pair);
  } catch (const Error&) {
  }
}

namespace {

torch::nn::Sequential small_model() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)), model::BatchNorm2d(4));
}

}  // namespace

void write_checkpoint_seed(const char* path) {
  torch::nn::Sequential net = small_model();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  net->forward(at::ones({2, 3, 5, 5})).sum().backward();
  opt.step();  // so there is momentum state to save
  train::TrainState state;
  state.epoch = 1;
  state.global_step = 3;
  state.best_miou = 0.25;
  state.history = R"([{"epoch":1,"miou":0.25}])";
  train::save_checkpoint(path, *net, opt, state, train::TrainConfig{});
}

void checkpoint(const uint8_t* data, size_t size) {
  try {
    (void)train::read_checkpoint_info(data, size, "fuzz.pt");
  } catch (const Error&) {
  }
  try {
    torch::nn::Sequential net = small_model();
    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    train::load_checkpoint(data, size, "fuzz.pt", *net, &opt);
  } catch (const Error&) {
  }
}

void manifest(const uint8_t* data, size_t size) {
  try {
    (void)data::parse_manifest(std::string(reinterpret_cast<const char*>(data), size), "fuzz_manifest.json");
  } catch (const Error&) {
  }
}

void archive(const uint8_t* data, size_t size) {
  // Everything lands in a folder of this process's own, emptied after every input; small limits keep a lying
  // header from filling the disk.
  static const std::filesystem::path dest =
      std::filesystem::temp_directory_path() / ("petseg-fuzz-archive-" + std::to_string(::getpid()));
  fetch::ExtractLimits limits;
  limits.max_entry_bytes = 1 << 20;
  limits.max_total_bytes = 4 << 20;
  limits.max_entries = 1000;
  try {
    fetch::extract_archive(data, size, "fuzz.tar.gz", dest / "out", limits);
  } catch (const Error&) {
  }
  std::error_code ec;
  std::filesystem::remove_all(dest, ec);
}

}  // namespace petseg::fuzz
