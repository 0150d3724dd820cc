// File helpers: whole-file reads, atomic writes and moves that never overwrite.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace petseg {

std::vector<uint8_t> read_file(const std::filesystem::path& path);
std::string read_text_file(const std::filesystem::path& path);
// The one way petseg writes a file: into `path` + ".tmp", fsync, rename over `path`, fsync of the folder. A crash
// or a full disk leaves the old file or the complete new one, never a torn file, and no temporary file after an
// error, which names the file and the OS reason ("... (the previous file is intact)").
void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size);
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
// Streaming: `produce` hands the bytes in order to the sink it is given. The sink never fails mid-stream (writers
// such as libtorch's zip writer end the process on a short write): an OS error is remembered, later bytes are
// dropped, and the error is thrown once `produce` returns. `what` names the file in that error ("checkpoint").
using ByteSink = std::function<void(const void* data, size_t size)>;
void write_file_atomic(const std::filesystem::path& path, const std::function<void(const ByteSink&)>& produce,
                       const std::string& what = "file");
// For libraries that write a file by name themselves (TorchScript's save, the profiler's trace): `write` writes
// the temporary path it is given; then the same fsync and rename.
void write_file_atomic_via(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& tmp)>& write);
// Before the work that ends in writing `path` (an export): fails now unless `path` may be written there. An existing
// file is refused unless `overwrite` (the error says that --force overwrites it); a missing folder, a folder that is
// a file, or one that cannot take a new file is an error naming the folder and the OS reason.
void check_output_file(const std::filesystem::path& path, bool overwrite);
// Moves `from` to `to` (creating parent folders); if `to` exists, appends ".1", ".2", ... Returns the final path.
// A tool's cache folder, as the XDG convention and PyTorch place theirs: $<env_var> when set, else
// $XDG_CACHE_HOME/<name>, else ~/.cache/<name>, else (no HOME) <temp>/<name>-cache. Nothing is created.
std::filesystem::path user_cache_dir(const char* env_var, const std::string& name);

std::filesystem::path move_without_overwrite(const std::filesystem::path& from, const std::filesystem::path& to);

// An exclusive advisory lock (flock) on `path`, created if missing, held for this object's scope: another process
// doing the same work waits for it.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

}  // namespace petseg
