// Logging: one line per message on stderr, thread-safe, with warn-once and a sink tests can capture.
#pragma once

#include <functional>
#include <string>

#include "core/check.h"

namespace petseg {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void log_message(LogLevel level, const std::string& message);
void set_log_level(LogLevel level);
// Replaces the stderr sink (nullptr restores it). Used by tests to capture warnings.
void set_log_sink(std::function<void(LogLevel, const std::string&)> sink);
// Logs a warning the first time `key` is seen in this process; returns whether it was logged.
bool warn_once(const std::string& key, const std::string& message);

template <class... Args>
void log_info(const Args&... args) {
  log_message(LogLevel::kInfo, detail::str_cat(args...));
}
template <class... Args>
void log_warning(const Args&... args) {
  log_message(LogLevel::kWarning, detail::str_cat(args...));
}
template <class... Args>
void log_debug(const Args&... args) {
  log_message(LogLevel::kDebug, detail::str_cat(args...));
}

}  // namespace petseg
