// Logging implementation: a mutex-guarded sink so lines from loader workers never interleave.
#include "core/log.h"

#include <cstdio>
#include <mutex>
#include <unordered_set>

namespace petseg {
namespace {

std::mutex& log_mutex() {
  static std::mutex m;
  return m;
}
LogLevel g_level = LogLevel::kInfo;
std::function<void(LogLevel, const std::string&)> g_sink;

const char* prefix(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "petseg: debug: ";
    case LogLevel::kInfo:
      return "petseg: ";
    case LogLevel::kWarning:
      return "petseg: warning: ";
    case LogLevel::kError:
      return "petseg: error: ";
  }
  return "petseg: ";
}

}  // namespace

void set_log_level(LogLevel level) {
  std::lock_guard<std::mutex> lock(log_mutex());
  g_level = level;
}

void set_log_sink(std::function<void(LogLevel, const std::string&)> sink) {
  std::lock_guard<std::mutex> lock(log_mutex());
  g_sink = std::move(sink);
}

void log_message(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(log_mutex());
  if (level < g_level) return;
  if (g_sink) {
    g_sink(level, message);
    return;
  }
  std::fprintf(stderr, "%s%s\n", prefix(level), message.c_str());
  std::fflush(stderr);
}

bool warn_once(const std::string& key, const std::string& message) {
  static std::mutex seen_mutex;
  static std::unordered_set<std::string> seen;
  {
    std::lock_guard<std::mutex> lock(seen_mutex);
    if (!seen.insert(key).second) return false;
  }
  log_message(LogLevel::kWarning, message);
  return true;
}

}  // namespace petseg
