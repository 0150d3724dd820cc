// distributed/launcher: a rank that cannot be started stops the ranks already running (no orphans left training alone).
#include "distributed/launcher.h"

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>

#include "core/check.h"

extern char** environ;

namespace petseg::distributed {
namespace {

TEST(Launcher, ARankThatCannotStartStopsTheOthers) {
  pid_t started = 0;
  const SpawnRank spawn = [&](int rank, const std::vector<std::string>&, const std::vector<std::string>&) -> pid_t {
    if (rank == 1) PETSEG_FAIL("cannot start rank 1: planted failure");
    char sleep_cmd[] = "sleep", sixty[] = "60";
    char* argv[] = {sleep_cmd, sixty, nullptr};
    PETSEG_CHECK(::posix_spawnp(&started, "sleep", nullptr, nullptr, argv, environ) == 0, "cannot start sleep");
    return started;
  };
  try {
    launch_local(3, {"petseg", "train"}, spawn);
    FAIL() << "the failed start went unreported";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cannot start rank 1"), std::string::npos) << what;
    EXPECT_NE(what.find("stopped the 1 rank(s) already started"), std::string::npos) << what;
  }
  ASSERT_GT(started, 0);
  // Stopped and reaped: the pid no longer exists.
  EXPECT_EQ(::kill(started, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

}  // namespace
}  // namespace petseg::distributed
