// core/process: exit codes and captured output, no shell involved.
#include "core/process.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace petseg
