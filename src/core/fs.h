// File helpers: whole-file reads, atomic writes (temporary file, fsync, rename) and moves that never overwrite.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace petseg {

std::vector<uint8_t> read_file(const std::filesystem::path& path);
std::string read_text_file(const std::filesystem::path& path);
// Writes to `path` so that a crash leaves either the old file or the complete new one, never a torn file.
void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size);
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
// Moves `from` to `to` (creating parent folders); if `to` exists, appends ".1", ".2", ... Returns the final path.
std::filesystem::path move_without_overwrite(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace petseg
