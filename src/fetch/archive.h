// Safe extraction of downloaded archives (tar, gzip'd or not, and what else libarchive reads) with libarchive:
// every entry is checked before anything is written. Refused, with an error naming the entry: absolute paths, ".."
// components, symlinks or hard links whose target lies outside the destination, device files, FIFOs and sockets,
// entries larger than the limits. Nothing is ever written outside the destination, and no existing file is
// overwritten.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace petseg::fetch {

struct ExtractLimits {
  int64_t max_entry_bytes = int64_t(8) << 30;   // the real images.tar.gz holds files of a few MB, 0.8 GB in all
  int64_t max_total_bytes = int64_t(64) << 30;
  int64_t max_entries = 1'000'000;
};

struct ExtractReport {
  int64_t files = 0, directories = 0, links = 0, bytes = 0;
};

// Extracts `archive` into `dest` (created if needed). `name` is used in errors.
ExtractReport extract_archive(const std::filesystem::path& archive, const std::filesystem::path& dest,
                              const ExtractLimits& limits = {});
// The same from bytes in memory (what the fuzzer drives).
ExtractReport extract_archive(const void* data, size_t size, const std::string& name,
                              const std::filesystem::path& dest, const ExtractLimits& limits = {});

}  // namespace petseg::fetch
