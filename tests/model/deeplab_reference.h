// torchvision's segmentation models' outputs for the parity tests (tests/python/deeplab_reference.py): the weight
// file it saved, the input, and its `out`/`aux` in eval mode, computed on `device` (cpu, or cuda with TF32 off); for
// any model by name, also one train-mode forward after a seed and the buffers after it.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/process.h"
#include "model/weights.h"
#include "test_util.h"

namespace petseg::testing {

struct DeepLabReference {
  std::filesystem::path weights;
  at::Tensor input, out, aux;
};

inline DeepLabReference deeplab_reference(const TempDir& dir, const std::string& backbone, bool legacy,
                                          const std::string& device = "cpu") {
  DeepLabReference r;
  r.weights = dir / (backbone + (legacy ? "_legacy.pth" : ".pth"));
  const std::filesystem::path io = dir / (backbone + "_io.pth");
  std::vector<std::string> argv = {python_with_torchvision(),
                                   std::string(PETSEG_SOURCE_DIR) + "/tests/python/deeplab_reference.py",
                                   "--backbone",
                                   backbone,
                                   "--weights-out",
                                   r.weights.string(),
                                   "--io-out",
                                   io.string(),
                                   "--device",
                                   device};
  if (legacy) argv.push_back("--legacy");
  const auto result = run_process(argv);
  EXPECT_EQ(result.exit_code, 0) << result.out;
  std::map<std::string, at::Tensor> m;
  for (const auto& [k, v] : model::read_state_dict(io)) m[k] = v;
  r.input = m.at("input");
  r.out = m.at("out");
  r.aux = m.at("aux");
  return r;
}

struct SegmentationReference {
  std::filesystem::path weights;
  at::Tensor input, out, aux;       // eval mode; aux undefined for a model without an aux head
  at::Tensor train_out, train_aux;  // one train-mode forward on the CPU right after at::manual_seed(train_seed)
  std::map<std::string, at::Tensor> buffers_after_train;  // by state_dict name
};

inline SegmentationReference segmentation_reference(const TempDir& dir, const std::string& model, int train_seed) {
  SegmentationReference r;
  r.weights = dir / (model + ".pth");
  const std::filesystem::path io = dir / (model + "_io.pth");
  const auto result =
      run_process({python_with_torchvision(), std::string(PETSEG_SOURCE_DIR) + "/tests/python/deeplab_reference.py",
                   "--model", model, "--weights-out", r.weights.string(), "--io-out", io.string(), "--train-seed",
                   std::to_string(train_seed)});
  EXPECT_EQ(result.exit_code, 0) << result.out;
  const std::string after = "after_train.";
  for (const auto& [k, v] : model::read_state_dict(io)) {
    if (k == "input") r.input = v;
    if (k == "out") r.out = v;
    if (k == "aux") r.aux = v;
    if (k == "train_out") r.train_out = v;
    if (k == "train_aux") r.train_aux = v;
    if (k.rfind(after, 0) == 0) r.buffers_after_train[k.substr(after.size())] = v;
  }
  return r;
}

}  // namespace petseg::testing
