// libarchive reader (tar family, gzip/bzip2/xz) into libarchive's disk writer, each entry checked first; the
// writer's own SECURE_* flags stay on as a second line of defence.
#include "fetch/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <sstream>
#include <vector>

#include "core/check.h"

namespace petseg::fetch {
namespace {

namespace fs = std::filesystem;

using Reader = std::unique_ptr<archive, decltype(&archive_read_free)>;
using Writer = std::unique_ptr<archive, decltype(&archive_write_free)>;

// The path as components, "." dropped; empty when it is absolute, climbs with "..", or names nothing.
std::vector<std::string> safe_components(const std::string& path) {
  if (path.empty() || path[0] == '/') return {};
  std::vector<std::string> parts;
  std::stringstream in(path);
  for (std::string part; std::getline(in, part, '/');) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return {};
    parts.push_back(part);
  }
  return parts;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "/") + p;
  return s;
}

// Where a symlink at `entry` pointing to `target` leads, relative to the archive's root; empty when it leaves it.
std::vector<std::string> link_destination(const std::vector<std::string>& entry, const std::string& target) {
  if (target.empty() || target[0] == '/') return {};
  std::vector<std::string> at(entry.begin(), entry.end() - 1);  // the link's folder
  std::stringstream in(target);
  for (std::string part; std::getline(in, part, '/');) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (at.empty()) return {};
      at.pop_back();
    } else {
      at.push_back(part);
    }
  }
  return at.empty() ? std::vector<std::string>{"."} : at;
}

class Extractor {
 public:
  Extractor(std::string name, const fs::path& dest, const ExtractLimits& limits)
      : name_(std::move(name)), dest_(fs::absolute(dest).lexically_normal()), limits_(limits) {}

  ExtractReport run(archive* in) {
    Writer out(archive_write_disk_new(), archive_write_free);
    // The entries' paths are rewritten to dest/<checked relative path>, absolute by construction; the writer still
    // refuses ".." and writing through symbolic links.
    archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                  ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_NO_OVERWRITE);
    std::error_code ec;
    fs::create_directories(dest_, ec);
    PETSEG_CHECK(!ec, "cannot create ", dest_.string(), ": ", ec.message());
    archive_entry* entry = nullptr;
    for (;;) {
      const int r = archive_read_next_header(in, &entry);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) fail_archive(in, "cannot read the next entry");
      PETSEG_CHECK(++report_.files + report_.directories + report_.links <= limits_.max_entries, name_,
                   ": more than ", limits_.max_entries, " entries");
      check_and_place(entry);
      if (archive_write_header(out.get(), entry) < ARCHIVE_WARN) fail_archive(out.get(), "cannot write an entry");
      if (archive_entry_filetype(entry) == AE_IFREG && !archive_entry_hardlink(entry)) copy_data(in, out.get());
      if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) fail_archive(out.get(), "cannot finish an entry");
    }
    if (archive_write_close(out.get()) < ARCHIVE_WARN) fail_archive(out.get(), "cannot finish the extraction");
    return report_;
  }

 private:
  [[noreturn]] void refuse(const std::string& entry, const std::string& why) const {
    PETSEG_FAIL(name_, ": refusing entry \"", entry, "\": ", why, "; nothing was written outside ", dest_.string());
  }
  [[noreturn]] void fail_archive(archive* a, const char* what) const {
    const char* detail = archive_error_string(a);
    PETSEG_FAIL(name_, ": ", what, " (", detail ? detail : "corrupt or truncated archive", ")");
  }

  // Checks one entry and rewrites its paths to lie under the destination.
  void check_and_place(archive_entry* entry) {
    const char* raw = archive_entry_pathname(entry);
    const std::string path = raw ? raw : "";
    const std::vector<std::string> parts = safe_components(path);
    if (parts.empty()) refuse(path, path.empty() ? "an empty path" : "a path that leaves the destination (absolute or with ..)");
    const auto type = archive_entry_filetype(entry);
    if (const char* link = archive_entry_hardlink(entry)) {
      const std::vector<std::string> target = safe_components(link);
      if (target.empty()) refuse(path, std::string("a hard link to \"") + link + "\", outside the destination");
      archive_entry_set_hardlink(entry, (dest_ / joined(target)).c_str());
      ++report_.links, --report_.files;
    } else if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (!target || link_destination(parts, target).empty()) {
        refuse(path, std::string("a symbolic link to \"") + (target ? target : "") + "\", outside the destination");
      }
      ++report_.links, --report_.files;
    } else if (type == AE_IFDIR) {
      ++report_.directories, --report_.files;
    } else if (type != AE_IFREG) {
      refuse(path, "a device file, FIFO or socket, which a data set never holds");
    } else {
      const int64_t size = archive_entry_size(entry);
      if (size < 0 || size > limits_.max_entry_bytes) {
        refuse(path, "a file of " + std::to_string(size) + " bytes, beyond the limit of " +
                         std::to_string(limits_.max_entry_bytes));
      }
    }
    const fs::path target = dest_ / joined(parts);
    std::error_code ec;
    if (type != AE_IFDIR && fs::exists(fs::symlink_status(target, ec))) {
      PETSEG_FAIL(name_, ": entry \"", path, "\" would overwrite ", target.string(), ", which exists; nothing was "
                  "overwritten");
    }
    archive_entry_set_pathname(entry, target.c_str());
  }

  void copy_data(archive* in, archive* out) {
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      const int r = archive_read_data_block(in, &block, &size, &offset);
      if (r == ARCHIVE_EOF) return;
      if (r < ARCHIVE_WARN) fail_archive(in, "cannot read an entry's data");
      report_.bytes += int64_t(size);
      PETSEG_CHECK(report_.bytes <= limits_.max_total_bytes, name_, ": more than ", limits_.max_total_bytes,
                   " bytes in all, beyond the limit");
      if (archive_write_data_block(out, block, size, offset) < ARCHIVE_WARN) fail_archive(out, "cannot write data");
    }
  }

  std::string name_;
  fs::path dest_;
  ExtractLimits limits_;
  ExtractReport report_;
};

// A reader for the tar family; `open` attaches it to its input and returns libarchive's status.
template <typename Open>
Reader open_reader(const std::string& name, Open open) {
  Reader in(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(in.get());
  archive_read_support_filter_bzip2(in.get());
  archive_read_support_filter_xz(in.get());
  archive_read_support_format_tar(in.get());
  archive_read_support_format_gnutar(in.get());
  if (open(in.get()) != ARCHIVE_OK) {
    const char* detail = archive_error_string(in.get());
    PETSEG_FAIL(name, ": cannot open as an archive (", detail ? detail : "unknown format", ")");
  }
  return in;
}

}  // namespace

ExtractReport extract_archive(const fs::path& archive_path, const fs::path& dest, const ExtractLimits& limits) {
  Reader in = open_reader(archive_path.string(),
                          [&](archive* a) { return archive_read_open_filename(a, archive_path.c_str(), 1 << 16); });
  return Extractor(archive_path.string(), dest, limits).run(in.get());
}

ExtractReport extract_archive(const void* data, size_t size, const std::string& name, const fs::path& dest,
                              const ExtractLimits& limits) {
  Reader in = open_reader(name, [&](archive* a) { return archive_read_open_memory(a, data, size); });
  return Extractor(name, dest, limits).run(in.get());
}

}  // namespace petseg::fetch
