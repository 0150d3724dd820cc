// Wall-clock time as text, for run names and manifests.
#pragma once

#include <ctime>
#include <string>

namespace petseg {

// The current time formatted by strftime `format`, in UTC or local time.
inline std::string format_now(const char* format, bool utc) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  if (utc) {
    gmtime_r(&t, &tm);
  } else {
    localtime_r(&t, &tm);
  }
  char buf[64];
  std::strftime(buf, sizeof(buf), format, &tm);
  return buf;
}

}  // namespace petseg
