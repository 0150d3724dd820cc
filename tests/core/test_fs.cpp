// core/fs: atomic writes and moves that never overwrite.
#include "core/fs.h"

#include <gtest/gtest.h>

#include "core/check.h"
#include "test_util.h"

namespace petseg {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

TEST(Fs, AtomicWriteReplacesWholeFileAndLeavesNoTemporary) {
  TempDir dir;
  const fs::path p = dir / "a.txt";
  write_file_atomic(p, std::string("first version, rather long"));
  write_file_atomic(p, std::string("second"));
  EXPECT_EQ(read_text_file(p), "second");
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1) << "a temporary file was left behind";
}

TEST(Fs, AtomicWriteIntoMissingFolderFailsNamingIt) {
  TempDir dir;
  try {
    write_file_atomic(dir / "no/such/folder/x.txt", std::string("x"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/folder"), std::string::npos) << e.what();
  }
}

TEST(Fs, MoveNeverOverwrites) {
  TempDir dir;
  write_file_atomic(dir / "a", std::string("A"));
  write_file_atomic(dir / "b", std::string("B"));
  fs::create_directories(dir / "q");
  write_file_atomic(dir / "q/a", std::string("already there"));
  const fs::path moved = move_without_overwrite(dir / "a", dir / "q/a");
  EXPECT_EQ(moved, dir / "q/a.1");
  EXPECT_EQ(read_text_file(dir / "q/a"), "already there");
  EXPECT_EQ(read_text_file(moved), "A");
  EXPECT_FALSE(fs::exists(dir / "a"));
  // Creates missing parent folders.
  const fs::path deep = move_without_overwrite(dir / "b", dir / "q/x/y/b");
  EXPECT_EQ(read_text_file(deep), "B");
}

TEST(Fs, ReadMissingFileNamesIt) {
  TempDir dir;
  EXPECT_THROW(
      {
        try {
          read_file(dir / "missing.bin");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("missing.bin"), std::string::npos);
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace petseg
