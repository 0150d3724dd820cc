// File helpers with errors that name the file and the OS reason.
#include "core/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <stdio.h>  // renameat2
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "core/check.h"

namespace petseg {
namespace fs = std::filesystem;

std::vector<uint8_t> read_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PETSEG_CHECK(fd >= 0, "cannot open ", path.string(), ": ", errno_message(errno));
  std::vector<uint8_t> data;
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size > 0) data.reserve(static_cast<size_t>(size));
  ::lseek(fd, 0, SEEK_SET);
  uint8_t buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      PETSEG_FAIL("cannot read ", path.string(), ": ", errno_message(err));
    }
    if (n == 0) break;
    data.insert(data.end(), buf, buf + n);
  }
  ::close(fd);
  return data;
}

std::string read_text_file(const fs::path& path) {
  const auto bytes = read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

namespace {

void fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// The temporary file is complete: make it durable, put it in place, make the rename durable.
void commit(const fs::path& tmp, const fs::path& path) {
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    PETSEG_FAIL("cannot rename ", tmp.string(), " to ", path.string(), ": ", errno_message(err));
  }
  fsync_path(path.has_parent_path() ? path.parent_path() : fs::path("."), O_RDONLY | O_DIRECTORY);
}

fs::path temporary_for(const fs::path& path) { return path.string() + ".tmp"; }

}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(const ByteSink&)>& produce,
                       const std::string& what) {
  const fs::path tmp = temporary_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PETSEG_CHECK(fd >= 0, "cannot create ", tmp.string(), ": ", errno_message(errno));
  int error = 0;
  const ByteSink sink = [&](const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0 && !error) {
      const ssize_t n = ::write(fd, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = errno;
        break;
      }
      p += n;
      size -= size_t(n);
    }
  };
  try {
    produce(sink);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (!error && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  if (error) {
    ::unlink(tmp.c_str());
    PETSEG_FAIL("cannot write ", what == "file" ? "" : what + " ", path.string(), ": ", errno_message(error),
                " (the previous ", what, " is intact)");
  }
  commit(tmp, path);
}

void write_file_atomic(const fs::path& path, const void* data, size_t size) {
  write_file_atomic(path, [&](const ByteSink& sink) { sink(data, size); });
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

void write_file_atomic_via(const fs::path& path, const std::function<void(const fs::path& tmp)>& write) {
  const fs::path tmp = temporary_for(path);
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  PETSEG_CHECK(fs::exists(tmp), "cannot write ", path.string(), ": nothing was written");
  fsync_path(tmp, O_RDONLY);
  commit(tmp, path);
}

void check_output_file(const fs::path& path, bool overwrite) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  PETSEG_CHECK(!fs::is_directory(status), "cannot write ", path.string(), ": it is a folder");
  PETSEG_CHECK(overwrite || !fs::exists(status), path.string(), " exists; refusing to overwrite it (--force does)");
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  // Probing with a file of our own gives the OS's own reason (EACCES, EROFS, ENOTDIR, ENOENT), as root too.
  const fs::path probe = folder / ("." + path.filename().string() + ".petseg-probe");
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  PETSEG_CHECK(fd >= 0, "cannot write ", path.string(), ": the folder ", folder.string(), " cannot take it (",
               errno_message(errno), ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

fs::path move_without_overwrite(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  PETSEG_CHECK(!ec, "cannot create folder ", to.parent_path().string(), ": ", ec.message());
  // renameat2(RENAME_NOREPLACE) within one file system: the file is never copied (so never half-moved) and an
  // existing file at the target is never replaced, even by a racing process.
  for (int i = 0;; ++i) {
    const fs::path target = i == 0 ? to : fs::path(to.string() + "." + std::to_string(i));
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) return target;
    if (errno == EEXIST) continue;
    if (errno == EINVAL || errno == ENOSYS) {  // file system without RENAME_NOREPLACE
      if (fs::exists(fs::symlink_status(target))) continue;
      if (::rename(from.c_str(), target.c_str()) == 0) return target;
    }
    PETSEG_FAIL("cannot move ", from.string(), " to ", target.string(), ": ", errno_message(errno));
  }
}

std::filesystem::path user_cache_dir(const char* env_var, const std::string& name) {
  if (const char* env = std::getenv(env_var); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / name;
  if (const char* home = std::getenv("HOME"); home && *home) return std::filesystem::path(home) / ".cache" / name;
  return std::filesystem::temp_directory_path() / (name + "-cache");
}

FileLock::FileLock(const std::filesystem::path& path)
    : fd_(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
  PETSEG_CHECK(fd_ >= 0, "cannot open the lock file ", path.string());
  ::flock(fd_, LOCK_EX);
}

FileLock::~FileLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace petseg
