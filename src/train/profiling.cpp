// Kineto profiling (torch/csrc/autograd/profiler_kineto.h) behind a small recorder, so only this file includes it.
#include "train/profiling.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
namespace kineto = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;


// Kineto asks the CUDA driver for devices while it builds its result and logs an ERROR line when there is no driver
// (a CUDA build on a machine without a GPU), which alarms for nothing. Standard error is diverted to a temporary file
// for that call and everything else written meanwhile (another thread's warning, say) is passed on.
std::unique_ptr<kineto::ProfilerResult> stop_profiler() {
  if (cuda_available()) return kineto::disableProfiler();
  std::FILE* tmp = std::tmpfile();
  const int saved = tmp ? ::dup(STDERR_FILENO) : -1;
  if (saved < 0) {
    if (tmp) std::fclose(tmp);
    return kineto::disableProfiler();
  }
  std::fflush(stderr);
  ::dup2(::fileno(tmp), STDERR_FILENO);
  std::unique_ptr<kineto::ProfilerResult> result;
  std::exception_ptr error;
  try {
    result = kineto::disableProfiler();
  } catch (...) {
    error = std::current_exception();
  }
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::rewind(tmp);
  char line[4096];
  while (std::fgets(line, sizeof(line), tmp)) {
    if (!std::strstr(line, "gpuGetDeviceCount failed")) std::fputs(line, stderr);
  }
  std::fclose(tmp);
  if (error) std::rethrow_exception(error);
  return result;
}

}  // namespace

TraceRecorder::TraceRecorder(fs::path trace, bool cuda) : trace_(std::move(trace)) {
  std::set<ActivityType> activities = {ActivityType::CPU};
  if (cuda) activities.insert(ActivityType::CUDA);
  const ProfilerConfig config(ProfilerState::KINETO, /*report_input_shapes=*/true);
  kineto::prepareProfiler(config, activities);
  kineto::enableProfiler(config, activities);
  active_ = true;
}

TraceRecorder::~TraceRecorder() {
  if (!active_) return;
  try {
    stop_profiler();
  } catch (...) {  // already unwinding from another error: that one is the one to report
  }
}

void TraceRecorder::save() {
  PETSEG_CHECK(active_, "the profiler trace ", trace_.string(), " was saved already");
  active_ = false;
  std::unique_ptr<kineto::ProfilerResult> result = stop_profiler();
  PETSEG_CHECK(result, "the profiler returned no result for ", trace_.string());
  write_file_atomic_via(trace_, [&](const fs::path& tmp) { result->save(tmp.string()); });
}

double count_flops(const std::function<void()>& fn) {
  const std::set<ActivityType> activities = {ActivityType::CPU};
  const ProfilerConfig config(ProfilerState::KINETO, /*report_input_shapes=*/true, /*profile_memory=*/false,
                              /*with_stack=*/false, /*with_flops=*/true);
  kineto::prepareProfiler(config, activities);
  kineto::enableProfiler(config, activities);
  try {
    fn();
  } catch (...) {
    stop_profiler();
    throw;
  }
  const std::unique_ptr<kineto::ProfilerResult> result = stop_profiler();
  double flops = 0;
  for (const auto& e : result->events()) flops += double(e.flops());
  return flops;
}

std::string top_ops_table(const fs::path& trace, int top) {
  using json = nlohmann::json;
  std::map<std::string, std::pair<double, int>> by_name;
  try {
    const json events = json::parse(read_text_file(trace));
    const json& list = events.is_array() ? events : events.value("traceEvents", json::array());
    for (const auto& e : list) {
      // Complete events of operators and kernels; Kineto also writes process/thread metadata and flow events.
      if (!e.contains("dur") || !e.contains("name") || e.value("ph", "X") != "X") continue;
      const std::string cat = e.value("cat", "");
      if (cat == "python_function" || cat == "user_annotation") continue;
      auto& entry = by_name[e["name"].get<std::string>()];
      entry.first += e["dur"].get<double>() / 1000.0;
      ++entry.second;
    }
  } catch (const std::exception& e) {
    return std::string("could not read ") + trace.string() + ": " + e.what();
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::ostringstream os;
  os << std::left << std::setw(44) << "op" << std::right << std::setw(12) << "total ms" << std::setw(8) << "calls"
     << "\n"
     << std::fixed << std::setprecision(1);
  for (int i = 0; i < top && i < int(rows.size()); ++i) {
    os << std::left << std::setw(44) << rows[i].first.substr(0, 43) << std::right << std::setw(12)
       << rows[i].second.first << std::setw(8) << rows[i].second.second << "\n";
  }
  return os.str();
}

}  // namespace petseg::train
