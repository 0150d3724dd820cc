// TensorBoard event files: Event protocol buffers (tensorboard_event.proto) serialized by protobuf and framed as
// TFRecords with Boost.CRC's CRC32C.
#include "report/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <system_error>

#include "core/check.h"
#include "core/log.h"
#include "image/image_io.h"
#include "tensorboard_event.pb.h"

namespace petseg::tensorboard {
namespace fs = std::filesystem;
namespace {

constexpr char kFilePrefix[] = "events.out.tfevents.";

// TFRecord's checksum: CRC32C (Castagnoli), "masked" so that a CRC stored inside CRC'd data does not weaken it.
uint32_t masked_crc32c(const void* data, size_t size) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void put_le(char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = char((value >> (8 * i)) & 0xff);
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// TensorBoard reads a folder's event files in name order, which the <unix time> field makes start order. A new file
// must sort after the folder's existing ones even when one was started in the same second (a quick resume) or the
// clock went back, or TensorBoard would read the old file last and let its abandoned steps win.
int64_t first_free_time(const fs::path& dir) {
  int64_t t = int64_t(std::time(nullptr));
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kFilePrefix, 0) != 0) continue;
    const char* first = name.data() + sizeof(kFilePrefix) - 1;
    int64_t existing = 0;
    const auto r = std::from_chars(first, name.data() + name.size(), existing);
    if (r.ec == std::errc() && r.ptr != first && existing >= t) t = existing + 1;
  }
  return t;
}

}  // namespace

struct EventWriter::Impl {
  fs::path dir;
  fs::path file;
  std::mutex mutex;
  std::FILE* out = nullptr;
  bool failed = false;

  // The one warning of this writer; from here on it writes nothing.
  void fail(const std::string& what, const std::string& reason) {
    log_warning("tensorboard: ", what, ": ", reason, " (no more TensorBoard events are written to ", dir, ")");
    failed = true;
    if (out) std::fclose(out);  // the error is already known; a second one would say nothing new
    out = nullptr;
  }
  void fail_errno(const std::string& what, int err) { fail(what, errno_message(err ? err : EIO)); }

  void open(const std::string& suffix) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail("cannot create the folder " + dir.string(), ec.message());
    const std::string host = host_name();
    int64_t t = first_free_time(dir);
    // O_EXCL: another writer in this folder (another process, or one started in the same second) is never truncated.
    for (int attempt = 0; attempt < 100; ++attempt, ++t) {
      char stamp[32];
      std::snprintf(stamp, sizeof(stamp), "%010lld", static_cast<long long>(t));
      const fs::path candidate = dir / (std::string(kFilePrefix) + stamp + "." + host + "." +
                                        std::to_string(::getpid()) + (suffix.empty() ? "" : "." + suffix));
      const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && errno == EEXIST) continue;
      if (fd < 0) return fail_errno("cannot create an event file in " + dir.string(), errno);
      out = ::fdopen(fd, "wb");
      if (!out) {
        const int err = errno;
        ::close(fd);
        return fail_errno("cannot open " + candidate.string(), err);
      }
      file = candidate;
      return;
    }
    fail("cannot create an event file in " + dir.string(), "100 names taken");
  }

  // One TFRecord: uint64 length, masked CRC of those 8 bytes, the payload, masked CRC of the payload (little-endian).
  void write(Event& event) {
    if (!out) return;
    event.set_wall_time(wall_time());
    std::string payload;
    if (!event.SerializeToString(&payload))
      return fail("cannot serialize an event for " + file.string(), "protobuf refused it");
    char header[12];
    put_le(header, payload.size(), 8);
    put_le(header + 8, masked_crc32c(header, 8), 4);
    char footer[4];
    put_le(footer, masked_crc32c(payload.data(), payload.size()), 4);
    errno = 0;
    if (std::fwrite(header, 1, sizeof(header), out) != sizeof(header) ||
        std::fwrite(payload.data(), 1, payload.size(), out) != payload.size() ||
        std::fwrite(footer, 1, sizeof(footer), out) != sizeof(footer)) {
      fail_errno("cannot write " + file.string(), errno);
    }
  }

  void flush() {
    if (!out) return;
    errno = 0;
    if (std::fflush(out) != 0) fail_errno("cannot write " + file.string(), errno);
  }
};

EventWriter::EventWriter(fs::path dir, std::string file_suffix) : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  impl_->open(file_suffix);
  Event event;
  event.set_file_version("brain.Event:2");
  impl_->write(event);
}

EventWriter::~EventWriter() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->flush();
  if (impl_->out) {
    errno = 0;
    const int rc = std::fclose(impl_->out);
    impl_->out = nullptr;
    // close() is where some file systems (NFS) first report a full disk.
    if (rc != 0) impl_->fail_errno("cannot close " + impl_->file.string(), errno);
  }
}

void EventWriter::start_session(int64_t step) {
  Event event;
  event.set_step(step);
  event.mutable_session_log()->set_status(SessionLog::START);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->write(event);
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  PETSEG_CHECK(!tag.empty(), "tensorboard: add_scalar needs a tag");
  Event event;
  event.set_step(step);
  Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->write(event);
}

void EventWriter::add_image_png(const std::string& tag, const std::string& png, int height, int width, int64_t step,
                                int channels) {
  PETSEG_CHECK(!tag.empty(), "tensorboard: add_image_png needs a tag");
  PETSEG_CHECK(height > 0 && width > 0, "tensorboard: image \"", tag, "\" has size ", width, "x", height);
  PETSEG_CHECK(channels >= 1 && channels <= 4, "tensorboard: image \"", tag, "\" has ", channels,
               " channels; valid: 1, 2, 3, 4");
  Event event;
  event.set_step(step);
  Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  Summary::Image* image = v->mutable_image();
  image->set_height(height);
  image->set_width(width);
  image->set_colorspace(channels);
  image->set_encoded_image_string(png);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->write(event);
}

void EventWriter::add_image(const std::string& tag, const image::Image& image, int64_t step) {
  if (!ok()) return;  // spares the encoding
  const std::vector<uint8_t> png = image::encode_png(image);
  add_image_png(tag, std::string(png.begin(), png.end()), image.height, image.width, step, image.channels);
}

void EventWriter::add_text(const std::string& tag, const std::string& markdown, int64_t step) {
  PETSEG_CHECK(!tag.empty(), "tensorboard: add_text needs a tag");
  Event event;
  event.set_step(step);
  Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  // What TensorBoard's text plugin writes: its plugin name, empty content (TextPluginData version 0), one string.
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  TensorProto* tensor = v->mutable_tensor();
  tensor->set_dtype(DT_STRING);
  tensor->mutable_tensor_shape()->add_dim()->set_size(1);
  tensor->add_string_val(markdown);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->write(event);
}

void EventWriter::flush() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->flush();
}

bool EventWriter::ok() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return !impl_->failed;
}

fs::path EventWriter::path() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->file;
}

}  // namespace petseg::tensorboard
