// The machine from /proc and nvidia-smi, libtorch from its version macros and CUDA hooks, Python from itself.
#include "bench/environment.h"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "bench/python_reference.h"
#include "core/clock.h"
#include "core/device.h"
#include "core/process.h"

namespace petseg::bench {
namespace {

using json = nlohmann::json;

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

double memory_gib() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) / double(1 << 30) : 0;
}

std::string version_text(long v) {  // 13000 -> "13.0", 91900 -> "9.19.0"
  if (v <= 0) return "";
  if (v >= 10000 && v < 90000) return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}

// First GPU's name and the driver, when nvidia-smi answers.
json gpu_info() {
  if (!cuda_available()) return nullptr;
  json g = {{"count", cuda_device_count()}};
  try {
    const ProcessResult r =
        run_process({"nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"});
    if (r.exit_code == 0) {
      std::istringstream line(r.out.substr(0, r.out.find('\n')));
      std::string name, driver, memory;
      std::getline(line, name, ',');
      std::getline(line, driver, ',');
      std::getline(line, memory, ',');
      auto trim = [](std::string s) { return s.substr(s.find_first_not_of(' ')); };
      g["name"] = trim(name);
      g["driver"] = trim(driver);
      g["memory"] = trim(memory);
    }
  } catch (const std::exception&) {  // no nvidia-smi: the name stays unknown
  }
  return g;
}

json python_versions(const std::string& python_exe) {
  json p = {{"executable", python_exe}, {"torch", nullptr}, {"torchvision", nullptr}, {"cuda", nullptr}};
  if (python_exe.empty()) return p;
  try {
    const ProcessResult r = run_process(
        {python_exe, "-c",
         "import json, torch, torchvision; print(json.dumps({'torch': torch.__version__, 'torchvision': "
         "torchvision.__version__, 'cuda': torch.version.cuda}))"});
    if (r.exit_code == 0) {
      const json v = json::parse(r.out.substr(r.out.find('{')));
      for (const char* k : {"torch", "torchvision", "cuda"}) p[k] = v.at(k);
    }
  } catch (const std::exception&) {  // no such interpreter, or no torch in it: recorded as null
  }
  return p;
}

}  // namespace

json describe_environment(const std::string& python_exe) {
  const auto& hooks = at::detail::getCUDAHooks();
  long cudart = 0, cudnn = 0;
  try {
    cudart = hooks.versionCUDART();
    cudnn = hooks.versionCuDNN();
  } catch (const std::exception&) {  // a libtorch without CUDA
  }
  const json python = python_versions(python_exe);
  return json{{"date", format_now("%Y-%m-%dT%H:%M:%SZ", /*utc=*/true)},
              {"cpu_model", cpu_model()},
              {"cores", std::thread::hardware_concurrency()},
              {"memory_gib", std::round(memory_gib() * 10) / 10},
              {"gpu", gpu_info()},
              {"petseg_version", PETSEG_VERSION},
              {"libtorch_version", TORCH_VERSION},
              {"libtorch_cuda", version_text(cudart)},
              {"libtorch_cudnn", version_text(cudnn)},
              {"intra_op_threads", at::get_num_threads()},
              {"python_executable", python["executable"]},
              {"python_torch_version", python["torch"]},
              {"python_torchvision_version", python["torchvision"]},
              {"python_torch_cuda", python["cuda"]}};
}

std::string environment_line(const json& e) {
  std::ostringstream os;
  os << e.value("cpu_model", "?") << ", " << e.value("cores", 0) << " cores, ";
  if (e.contains("gpu") && e["gpu"].is_object()) {
    os << e["gpu"].value("name", "unknown GPU") << " (driver " << e["gpu"].value("driver", "?") << ")";
  } else {
    os << "no GPU";
  }
  os << "; libtorch " << e.value("libtorch_version", "?");
  if (!e.value("libtorch_cuda", "").empty()) os << " (CUDA " << e.value("libtorch_cuda", "") << ")";
  if (e.contains("python_torch_version") && e["python_torch_version"].is_string()) {
    os << "; Python torch " << e["python_torch_version"].get<std::string>() << ", torchvision "
       << e.value("python_torchvision_version", "?");
  }
  return os.str();
}

}  // namespace petseg::bench
