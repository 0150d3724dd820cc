// core/log: warn-once and the capture sink.
#include "core/log.h"

#include <gtest/gtest.h>

#include <vector>

namespace petseg {
namespace {

TEST(Log, WarnOnceWarnsOncePerKey) {
  std::vector<std::string> lines;
  set_log_sink([&](LogLevel, const std::string& m) { lines.push_back(m); });
  EXPECT_TRUE(warn_once("test-key-1", "first"));
  EXPECT_FALSE(warn_once("test-key-1", "again"));
  EXPECT_TRUE(warn_once("test-key-2", "other"));
  set_log_sink(nullptr);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "first");
  EXPECT_EQ(lines[1], "other");
}

TEST(Log, LevelFilters) {
  std::vector<std::string> lines;
  set_log_sink([&](LogLevel, const std::string& m) { lines.push_back(m); });
  set_log_level(LogLevel::kWarning);
  log_info("hidden");
  log_warning("shown ", 42);
  set_log_level(LogLevel::kInfo);
  set_log_sink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "shown 42");
}

}  // namespace
}  // namespace petseg
