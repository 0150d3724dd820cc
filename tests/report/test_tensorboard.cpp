// report/tensorboard: files read back by TensorBoard's own readers (the pinned environment's tensorboard), TFRecord
// framing checked byte by byte, resume continuity, and failures (unusable folder, full disk) that never throw.
#include "report/tensorboard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/process.h"
#include "image/image_io.h"
#include "test_util.h"

namespace petseg::tensorboard {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// What TensorBoard's Python readers see in `dir` (testing::read_tensorboard).
json read_with_tensorboard(const fs::path& dir, const std::string& reader = "legacy") {
  return json::parse(testing::read_tensorboard(dir, reader));
}

// Captures warnings for the lifetime of the object.
struct CapturedLog {
  std::vector<std::string> warnings;
  CapturedLog() {
    set_log_sink([this](LogLevel level, const std::string& m) {
      if (level == LogLevel::kWarning) warnings.push_back(m);
    });
  }
  ~CapturedLog() { set_log_sink(nullptr); }
};

// Every way a caller logs, for the no-op checks.
void log_everything(EventWriter& w, int64_t step) {
  w.start_session(step);
  w.add_scalar("loss", 1.0, step);
  w.add_image_png("img", std::string(1000, 'x'), 4, 4, step);
  w.add_text("notes", "*text*", step);
  w.flush();
}

image::Image gradient(int w, int h, int c) {
  image::Image img(w, h, c);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 7);
  return img;
}

TEST(TensorBoard, ScalarsImagesAndTextReadBackByTensorBoard) {
  PETSEG_REQUIRE_TENSORBOARD();
  testing::TempDir dir;
  const std::vector<double> losses = {1.0 / 3.0, 0.0, -2.5e-7, 123456.789, 0.1};
  {
    EventWriter w(dir / "run");
    ASSERT_TRUE(w.ok());
    w.start_session(0);
    for (size_t i = 0; i < losses.size(); ++i) w.add_scalar("train/loss", losses[i], int64_t(i) * 10);
    w.add_scalar("val/miou", 0.75, 40);
    w.add_image("val/predictions", gradient(7, 5, 3), 40);
    const auto gray = image::encode_png(gradient(3, 9, 1));
    w.add_image_png("val/gray", std::string(gray.begin(), gray.end()), 9, 3, 40, /*channels=*/1);
    w.add_text("config", "| option | value |\n|---|---|\n| lr | 0.01 |", 0);
    EXPECT_TRUE(w.ok());
  }  // destruction flushes
  for (const std::string reader : {"legacy", "plugin"}) {
    SCOPED_TRACE(reader);
    const json seen = read_with_tensorboard(dir / "run", reader);
    EXPECT_EQ(seen["file_version"], 2.0);
    const json& loss = seen["scalars"]["train/loss"];
    ASSERT_EQ(loss.size(), losses.size()) << seen.dump();
    for (size_t i = 0; i < losses.size(); ++i) {
      EXPECT_EQ(loss[i][0], int64_t(i) * 10);
      // TensorBoard keeps float32: exact after rounding to it.
      EXPECT_EQ(loss[i][1].get<double>(), double(float(losses[i])));
    }
    EXPECT_EQ(seen["scalars"]["val/miou"], json::parse("[[40, 0.75]]"));
    EXPECT_EQ(seen["images"]["val/predictions"], json::parse("[[40, 7, 5]]"));  // [step, width, height]
    EXPECT_EQ(seen["images"]["val/gray"], json::parse("[[40, 3, 9]]"));
    ASSERT_EQ(seen["text"]["config"].size(), 1u) << seen.dump();
    EXPECT_EQ(seen["text"]["config"][0][1], "| option | value |\n|---|---|\n| lr | 0.01 |");
  }
}

// CRC32C bit by bit (reflected polynomial 0x82F63B78): an oracle independent of Boost's table-driven one.
uint32_t crc32c_bitwise(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
uint64_t get_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Record {
  size_t offset;
  std::string payload;
};
// Splits an event file into its TFRecords, checking both CRCs of each.
std::vector<Record> read_records(const fs::path& file) {
  const std::vector<uint8_t> bytes = read_file(file);
  std::vector<Record> records;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_GE(bytes.size() - pos, 12u) << "truncated header at " << pos;
    if (bytes.size() - pos < 12) break;
    const uint8_t* p = bytes.data() + pos;
    const uint64_t length = get_le(p, 8);
    EXPECT_EQ(get_le(p + 8, 4), masked(crc32c_bitwise(p, 8))) << "length CRC at " << pos;
    EXPECT_GE(bytes.size() - pos - 12, length + 4) << "truncated record at " << pos;
    if (bytes.size() - pos - 12 < length + 4) break;
    EXPECT_EQ(get_le(p + 12 + length, 4), masked(crc32c_bitwise(p + 12, length))) << "payload CRC at " << pos;
    records.push_back({pos, std::string(reinterpret_cast<const char*>(p + 12), length)});
    pos += 12 + length + 4;
  }
  return records;
}

TEST(TensorBoard, FramingIsTfRecordWithMaskedCrc32c) {
  const char* check = "123456789";  // the standard CRC-32C check value
  ASSERT_EQ(crc32c_bitwise(reinterpret_cast<const uint8_t*>(check), 9), 0xE3069283u);
  testing::TempDir dir;
  fs::path file;
  {
    EventWriter w(dir.path(), "rank0");
    file = w.path();
    w.start_session(0);
    for (int step = 0; step < 20; ++step) w.add_scalar("loss", 1.0 / (step + 1), step);
    w.add_image_png("img", std::string(70000, '\x89'), 100, 100, 20);  // a record longer than stdio's buffer
    w.add_text("notes", "hello", 20);
  }
  const std::string name = file.filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_EQ(name.substr(name.size() - 6), ".rank0") << name;
  const std::vector<Record> records = read_records(file);
  ASSERT_EQ(records.size(), 1u + 1u + 20u + 1u + 1u);  // file_version, START, scalars, image, text
  EXPECT_NE(records[0].payload.find("brain.Event:2"), std::string::npos);
  EXPECT_EQ(records[22].payload.size() > 70000, true);
}

TEST(TensorBoard, TensorBoardStopsAtACorruptRecord) {
  PETSEG_REQUIRE_TENSORBOARD();
  // TensorBoard checks both CRCs (a bad one ends the file for it): so the round trips above also prove ours right.
  testing::TempDir dir;
  fs::path file;
  {
    EventWriter w(dir.path());
    file = w.path();
    for (int step = 0; step < 3; ++step) w.add_scalar("loss", step, step);
  }
  ASSERT_EQ(read_with_tensorboard(dir.path())["scalars"]["loss"].size(), 3u);
  const std::vector<Record> records = read_records(file);
  ASSERT_EQ(records.size(), 4u);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(records[3].offset + 12 + records[3].payload.size() - 1));
  f.put(char(records[3].payload.back() ^ 0x40));  // the last byte of the last scalar's value
  f.close();
  EXPECT_EQ(read_with_tensorboard(dir.path())["scalars"]["loss"], json::parse("[[0, 0.0], [1, 1.0]]"));
}

// A run stopped at step 9 and resumed from its checkpoint at step 6, into the same folder (within the same second,
// which the file names must still order).
void write_interrupted_run(const fs::path& dir, bool start_first, bool start_resumed) {
  fs::path first, second;
  {
    EventWriter w(dir);
    first = w.path();
    if (start_first) w.start_session(0);
    for (int step = 0; step <= 9; ++step) w.add_scalar("loss", 100 + step, step);
    w.add_image_png("img", "old", 2, 2, 8);
  }
  {
    EventWriter w(dir);
    second = w.path();
    if (start_resumed) w.start_session(6);
    for (int step = 6; step <= 12; ++step) w.add_scalar("loss", 200 + step, step);
    w.add_image_png("img", "new", 2, 2, 7);
  }
  EXPECT_LT(first.filename().string(), second.filename().string()) << "TensorBoard reads files in name order";
}

// Steps 0-5 of the first run, 6-12 of the resumed one, each once.
json resumed_curve() {
  json curve = json::array();
  for (int step = 0; step <= 12; ++step) curve.push_back({step, step < 6 ? 100 + step : 200 + step});
  return curve;
}

TEST(TensorBoard, ResumeWithStartSessionShowsOneCurve) {
  PETSEG_REQUIRE_TENSORBOARD();
  testing::TempDir dir;
  write_interrupted_run(dir.path(), /*start_first=*/true, /*start_resumed=*/true);
  for (const std::string reader : {"legacy", "plugin"}) {
    SCOPED_TRACE(reader);
    const json seen = read_with_tensorboard(dir.path(), reader);
    EXPECT_EQ(seen["scalars"]["loss"], resumed_curve());
    EXPECT_EQ(seen["images"]["img"], json::parse("[[7, 2, 2]]"));  // the old run's step 8 is gone
  }
}

TEST(TensorBoard, NewFileSortsAfterTheFolderExistingOnes) {
  PETSEG_REQUIRE_TENSORBOARD();
  // A process restarted within the same second has another pid ("1000" sorts before "999"), and clocks go back: the
  // new file's time is made later than every existing file's, since TensorBoard reads files in name order.
  testing::TempDir dir;
  fs::path old_file;
  {
    EventWriter w(dir.path());
    old_file = w.path();
    w.start_session(0);
    for (int step = 0; step <= 9; ++step) w.add_scalar("loss", 100 + step, step);
  }
  const fs::path ahead = dir / ("events.out.tfevents." + std::to_string(std::time(nullptr) + 1000) + ".zzzz.99999");
  fs::rename(old_file, ahead);
  fs::path new_file;
  {
    EventWriter w(dir.path());
    new_file = w.path();
    w.start_session(6);
    for (int step = 6; step <= 12; ++step) w.add_scalar("loss", 200 + step, step);
  }
  EXPECT_LT(ahead.filename().string(), new_file.filename().string());
  EXPECT_EQ(read_with_tensorboard(dir.path())["scalars"]["loss"], resumed_curve());
}

TEST(TensorBoard, ResumeWithoutStartSessionRepeatsSteps) {
  PETSEG_REQUIRE_TENSORBOARD();
  // What the header says about TensorBoard: without START both Python readers keep the abandoned steps 6-9 ...
  testing::TempDir dir;
  write_interrupted_run(dir.path(), /*start_first=*/true, /*start_resumed=*/false);
  for (const std::string reader : {"legacy", "plugin"}) {
    EXPECT_EQ(read_with_tensorboard(dir.path(), reader)["scalars"]["loss"].size(), 10u + 7u) << reader;
  }
  // ... and the server's reader takes a run's first START for its beginning: a START only in the resumed file purges
  // nothing there, hence start_session in every run.
  testing::TempDir dir2;
  write_interrupted_run(dir2.path(), /*start_first=*/false, /*start_resumed=*/true);
  EXPECT_EQ(read_with_tensorboard(dir2.path(), "legacy")["scalars"]["loss"].size(), 13u);
  EXPECT_EQ(read_with_tensorboard(dir2.path(), "plugin")["scalars"]["loss"].size(), 17u);
}

TEST(TensorBoard, UnusableFolderWarnsOnceAndNeverThrows) {
  testing::TempDir dir;
  write_file_atomic(dir / "a_file", std::string("not a folder"));
  const fs::path folder = dir / "a_file" / "runs";  // fails for root too
  CapturedLog log;
  {
    EventWriter w(folder);
    EXPECT_FALSE(w.ok());
    EXPECT_TRUE(w.path().empty());
    EXPECT_NO_THROW(log_everything(w, 3));
    EXPECT_NO_THROW(w.add_image("img", gradient(2, 2, 3), 3));
  }
  ASSERT_EQ(log.warnings.size(), 1u);
  EXPECT_NE(log.warnings[0].find(folder.string()), std::string::npos) << log.warnings[0];
  EXPECT_NE(log.warnings[0].find("Not a directory"), std::string::npos) << log.warnings[0];
}

TEST(TensorBoard, ReadOnlyFolderWarnsOnceAndNeverThrows) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only folders (the folder-under-a-file test covers root)";
  testing::TempDir dir;
  fs::create_directories(dir / "runs");
  ::chmod((dir / "runs").c_str(), 0500);
  CapturedLog log;
  {
    EventWriter w(dir / "runs");
    EXPECT_FALSE(w.ok());
    EXPECT_NO_THROW(log_everything(w, 0));
  }
  ::chmod((dir / "runs").c_str(), 0700);
  ASSERT_EQ(log.warnings.size(), 1u);
  EXPECT_NE(log.warnings[0].find("Permission denied"), std::string::npos) << log.warnings[0];
}

// Files may grow to `limit` bytes in this scope (writes beyond fail with EFBIG, as on a full disk, SIGXFSZ ignored).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t limit) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = limit;
    ::setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

TEST(TensorBoard, FullDiskWarnsOnceAndNeverThrows) {
  PETSEG_REQUIRE_TENSORBOARD();
  testing::TempDir dir;
  CapturedLog log;
  fs::path file;
  {
    EventWriter w(dir.path());
    file = w.path();
    w.start_session(0);
    w.add_scalar("loss", 0.5, 0);
    w.flush();
    ASSERT_TRUE(w.ok());
    FileSizeLimit limit(16 * 1024);
    EXPECT_NO_THROW(w.add_image_png("img", std::string(64 * 1024, 'x'), 10, 10, 1));
    EXPECT_NO_THROW(log_everything(w, 2));
    EXPECT_FALSE(w.ok());
    for (int step = 3; step < 100; ++step) EXPECT_NO_THROW(w.add_scalar("loss", step, step));
  }
  ASSERT_EQ(log.warnings.size(), 1u);
  EXPECT_NE(log.warnings[0].find(dir.path().string()), std::string::npos) << log.warnings[0];
  EXPECT_NE(log.warnings[0].find("File too large"), std::string::npos) << log.warnings[0];
  // What was flushed before the failure is still readable.
  EXPECT_EQ(read_with_tensorboard(dir.path())["scalars"]["loss"], json::parse("[[0, 0.5]]"));
}

TEST(TensorBoard, InvalidArgumentsThrow) {
  testing::TempDir dir;
  EventWriter w(dir.path());
  EXPECT_THROW(w.add_scalar("", 1.0, 0), Error);
  EXPECT_THROW(w.add_image_png("img", "png", 0, 4, 0), Error);
  EXPECT_THROW(w.add_image_png("img", "png", 4, 4, 0, /*channels=*/5), Error);
  EXPECT_TRUE(w.ok());
}

}  // namespace
}  // namespace petseg::tensorboard
