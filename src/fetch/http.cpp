// libcurl easy transfers: one per attempt, appending to the partial file from where the last one stopped.
#include "fetch/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "core/check.h"
#include "core/log.h"

namespace petseg::fetch {
namespace {

namespace fs = std::filesystem;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  std::FILE* file = nullptr;
  int write_errno = 0;
  int64_t written = 0;
  int64_t offset = 0;  // bytes the partial file held when this attempt started
  bool tty = ::isatty(STDERR_FILENO) == 1;
  std::string what;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last_draw{};
};

size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (std::fwrite(data, 1, bytes, t->file) != bytes) {
    t->write_errno = errno ? errno : EIO;
    return 0;  // makes curl stop with CURLE_WRITE_ERROR
  }
  t->written += int64_t(bytes);
  return bytes;
}

std::string human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  const auto clock = std::chrono::steady_clock::now();
  if (!t->tty || clock - t->last_draw < std::chrono::milliseconds(200)) return 0;
  t->last_draw = clock;
  const double seconds = std::chrono::duration<double>(clock - t->start).count();
  const double rate = seconds > 0 ? double(now) / seconds : 0;
  const double all = double(t->offset + total), done = double(t->offset + now);
  std::string line = t->what + " " + human(done);
  if (total > 0) {
    const int width = 24, bar = int(width * done / all);
    const double eta = rate > 0 ? (all - done) / rate : 0;
    char tail[64];
    std::snprintf(tail, sizeof(tail), " ETA %d:%02d", int(eta) / 60, int(eta) % 60);
    line += " / " + human(all) + " [" + std::string(size_t(bar), '#') + std::string(size_t(width - bar), '.') + "] " +
            human(rate) + "/s" + tail;
  }
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
  return 0;
}

// Errors a fresh attempt with a Range request may get past (the connection dropped mid-body).
bool resumable(CURLcode code) {
  return code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR || code == CURLE_OPERATION_TIMEDOUT ||
         code == CURLE_GOT_NOTHING || code == CURLE_SEND_ERROR || code == CURLE_HTTP2_STREAM;
}

std::string explain(CURLcode code, const char* detail) {
  std::string what = detail && *detail ? detail : curl_easy_strerror(code);
  if (code == CURLE_COULDNT_RESOLVE_HOST) return "the host name did not resolve (" + what + ")";
  if (code == CURLE_COULDNT_CONNECT) return "the connection failed (" + what + ")";
  return what;
}

using Handle = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;

// An easy handle with what every petseg transfer sets: redirects followed, HTTP errors as failures, curl's message
// in `error` (which must outlive the handle), the connection time bounded, petseg's user agent.
Handle new_handle(const std::string& url, char* error, long connect_timeout_s) {
  global_init();
  Handle curl(curl_easy_init(), curl_easy_cleanup);
  PETSEG_CHECK(curl, "cannot download ", url, ": libcurl could not make a transfer handle");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, connect_timeout_s);
  curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, "petseg/" PETSEG_VERSION);
  return curl;
}

}  // namespace

std::string join_url(const std::string& base, const std::string& name) {
  if (base.empty()) return name;
  return base.back() == '/' ? base + name : base + "/" + name;
}

int64_t download_to(const std::string& url, const fs::path& part, const DownloadOptions& options) {
  int64_t total = 0;
  for (int attempt = 1;; ++attempt) {
    std::error_code ec;
    const int64_t have = fs::exists(part, ec) ? int64_t(fs::file_size(part, ec)) : 0;
    char error[CURL_ERROR_SIZE] = {};
    const Handle curl = new_handle(url, error, options.connect_timeout_s);
    Transfer t;
    t.offset = have;
    t.what = options.what.empty() ? url : options.what;
    t.file = std::fopen(part.c_str(), have > 0 ? "ab" : "wb");
    PETSEG_CHECK(t.file, "cannot write ", part.string(), ": ", std::strerror(errno));
    curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, options.stall_timeout_s);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
    if (have > 0) curl_easy_setopt(curl.get(), CURLOPT_RESUME_FROM_LARGE, curl_off_t(have));
    const CURLcode code = curl_easy_perform(curl.get());
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    const bool closed = std::fclose(t.file) == 0;
    if (t.tty) std::fprintf(stderr, "\n");
    total += t.written;
    if (t.write_errno) PETSEG_FAIL("cannot write ", part.string(), ": ", std::strerror(t.write_errno));
    PETSEG_CHECK(closed, "cannot write ", part.string(), ": ", std::strerror(errno));
    if (code == CURLE_OK && have > 0 && status == 200) {
      // The server sent the whole file again (it ignores ranges): what was appended after the old bytes is a
      // second copy. Start over from empty.
      log_warning(url, " does not resume downloads (HTTP 200 to a range request); starting over");
      fs::resize_file(part, 0, ec);
      continue;
    }
    if (code == CURLE_RANGE_ERROR || (code == CURLE_HTTP_RETURNED_ERROR && status == 416)) {
      fs::resize_file(part, 0, ec);  // the partial file is longer than the resource: start over
      if (attempt < options.attempts) continue;
    }
    if (code == CURLE_OK) return total;
    if (resumable(code) && attempt < options.attempts) {
      log_warning(url, ": ", explain(code, error), " after ", t.offset + t.written, " bytes; resuming (attempt ",
                  attempt + 1, " of ", options.attempts, ")");
      continue;
    }
    if (code == CURLE_HTTP_RETURNED_ERROR) PETSEG_FAIL("cannot download ", url, ": HTTP ", status);
    PETSEG_FAIL("cannot download ", url, ": ", explain(code, error));
  }
}

std::string fetch_text(const std::string& url) {
  struct Sink {
    std::string text;
    bool too_long = false;
  } sink;
  char error[CURL_ERROR_SIZE] = {};
  const Handle curl = new_handle(url, error, 30L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* user) -> size_t {
        auto* s = static_cast<Sink*>(user);
        if (s->text.size() + size * n > (1 << 20)) {
          s->too_long = true;
          return 0;
        }
        s->text.append(data, size * n);
        return size * n;
      });
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &sink);
  const CURLcode code = curl_easy_perform(curl.get());
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  PETSEG_CHECK(!sink.too_long, "cannot download ", url, ": larger than 1 MiB");
  if (code == CURLE_HTTP_RETURNED_ERROR) PETSEG_FAIL("cannot download ", url, ": HTTP ", status);
  PETSEG_CHECK(code == CURLE_OK, "cannot download ", url, ": ", explain(code, error));
  return sink.text;
}

}  // namespace petseg::fetch
