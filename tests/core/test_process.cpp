// core/process: exit codes and captured output, no shell involved.
#include "core/process.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/check.h"

namespace petseg {
namespace {

TEST(Process, CapturesOutputAndExitCode) {
  const auto r = run_process({"sh", "-c", "printf 'a b'; exit 7"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.out, "a b");
}

TEST(Process, ArgumentsPassVerbatim) {
  const auto r = run_process({"printf", "%s|", "with space", "quote'\""});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "with space|quote'\"|");
}

TEST(Process, MissingProgramIsAnError) { EXPECT_THROW(run_process({"/no/such/program"}), Error); }

TEST(Process, HandsOnEachLineAsItArrives) {
  std::vector<std::string> lines;
  ProcessOptions o;
  o.on_line = [&](const std::string& line) { lines.push_back(line); };
  const auto r = run_process({"sh", "-c", "echo one; echo; printf 'two\\nthree'"}, o);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "", "two", "three"}));
}

// What a child printed before its time box ran out is kept; the child is stopped, even one that ignores SIGTERM.
TEST(Process, ATimeBoxStopsTheChildAndKeepsWhatItPrinted) {
  std::vector<std::string> lines;
  ProcessOptions o;
  o.on_line = [&](const std::string& line) { lines.push_back(line); };
  o.timeout_s = 0.5;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_process({"sh", "-c", "trap '' TERM; echo measured; exec sleep 30"}, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + 9);
  EXPECT_EQ(lines, std::vector<std::string>{"measured"});
  EXPECT_LT(seconds, 20);
}

TEST(Process, AChildWithinItsTimeBoxIsNotStopped) {
  ProcessOptions o;
  o.timeout_s = 30;
  const auto r = run_process({"sh", "-c", "echo fine"}, o);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "fine\n");
}

}  // namespace
}  // namespace petseg
