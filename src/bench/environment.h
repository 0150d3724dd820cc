// Where a benchmark was measured, recorded in every results JSON: the machine (CPU model, cores, memory, GPU and
// driver), petseg's libtorch (version, CUDA runtime, cuDNN) and the Python reference's torch and torchvision.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace petseg::bench {

// `python_exe` empty: no Python reference in this run (its keys are null).
nlohmann::json describe_environment(const std::string& python_exe);
// One line of it for tables: "AMD EPYC 9R14, 2 cores, no GPU; libtorch 2.11.0 (CUDA 13.0); Python torch 2.11.0+cu130".
std::string environment_line(const nlohmann::json& environment);

}  // namespace petseg::bench
