// torchvision's DeepLabV3 outputs for the parity tests (tests/python/deeplab_reference.py): the weight file it
// saved, the input, and its `out`/`aux` in eval mode, computed on `device` (cpu, or cuda with TF32 off).
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

}  // namespace petseg::testing
