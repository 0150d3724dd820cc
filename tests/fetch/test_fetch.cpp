// fetch: safe extraction (the fuzz corpus's archives, good and hostile), digests, and errors that name the URL.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/check.h"
#include "core/fs.h"
#include "fetch/archive.h"
#include "fetch/digest.h"
#include "fetch/http.h"
#include "test_util.h"

namespace petseg::fetch {
namespace {

namespace fs = std::filesystem;

fs::path corpus(const std::string& name) { return fs::path(PETSEG_SOURCE_DIR) / "fuzz" / "corpus" / "archive" / name; }

TEST(Archive, ExtractsFilesFoldersAndLinksThatStayInside) {
  testing::TempDir dir;
  for (const char* name : {"good.tar.gz", "good.tar"}) {
    const fs::path dest = dir / name;
    const ExtractReport r = extract_archive(corpus(name), dest);
    EXPECT_EQ(r.files, 1) << name;
    EXPECT_EQ(r.links, 2) << name;
    EXPECT_TRUE(fs::is_regular_file(dest / "images/a.jpg")) << name;
    EXPECT_TRUE(fs::is_symlink(dest / "images/c.jpg")) << name;
    EXPECT_EQ(read_text_file(dest / "images/b.jpg"), read_text_file(dest / "images/a.jpg")) << name;
  }
}

TEST(Archive, RefusesEntriesThatWouldLeaveTheFolderOrAreDevices) {
  testing::TempDir dir;
  const std::pair<const char*, const char*> cases[] = {
      {"dotdot.tar.gz", "images/../../evil"},   {"absolute.tar.gz", "/tmp/evil"},
      {"symlink_out.tar.gz", "images/l"},       {"hardlink_out.tar.gz", "images/h"},
      {"device.tar.gz", "images/null"}};
  for (const auto& [file, entry] : cases) {
    const fs::path dest = dir / "out" / file;
    try {
      extract_archive(corpus(file), dest);
      ADD_FAILURE() << file << " was extracted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("refusing entry \"") + entry + "\""), std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(dir / "evil"));
  EXPECT_FALSE(fs::exists(dir / "out" / "evil"));
}

TEST(Archive, ExistingFilesAreNeverOverwritten) {
  testing::TempDir dir;
  extract_archive(corpus("good.tar.gz"), dir / "d");
  write_file_atomic(dir / "d/images/a.jpg", std::string("mine"));
  EXPECT_THROW(extract_archive(corpus("good.tar.gz"), dir / "d"), Error);
  EXPECT_EQ(read_text_file(dir / "d/images/a.jpg"), "mine");
}

TEST(Digest, Md5AndSha256OfAKnownFile) {
  testing::TempDir dir;
  write_file_atomic(dir / "abc", std::string("abc"));
  EXPECT_EQ(md5_file(dir / "abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(sha256_file(dir / "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Http, ErrorsNameTheUrlAndTheCause) {
  try {
    fetch_text("http://127.0.0.1:1/MD5SUMS");  // nothing listens on port 1
    FAIL();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("http://127.0.0.1:1/MD5SUMS"), std::string::npos) << what;
    EXPECT_NE(what.find("connection failed"), std::string::npos) << what;
  }
  EXPECT_EQ(join_url("http://m/x/", "a.pth"), "http://m/x/a.pth");
  EXPECT_EQ(join_url("http://m/x", "a.pth"), "http://m/x/a.pth");
}

}  // namespace
}  // namespace petseg::fetch
