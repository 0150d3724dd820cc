// HTTP(S) downloads with libcurl: into a partial file that an interrupted transfer resumes (HTTP Range), with a
// progress bar on a terminal and errors that name the URL and what went wrong (the name did not resolve, the
// connection was refused, the HTTP status, the disk filled up). The caller checks the bytes and renames the
// partial file into place: a partial or corrupt download never replaces a good file.
#pragma once

#include <filesystem>
#include <string>

namespace petseg::fetch {

struct DownloadOptions {
  int attempts = 4;          // a transfer cut off midway is resumed up to attempts - 1 times
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;  // abort a transfer that moves less than 1 byte/s for this long (then resume)
  std::string what;           // shown on the progress line, e.g. "images.tar.gz"
};

// Downloads `url` into `part`, continuing from `part`'s current size when the server honours ranges (starting
// over when it does not). Returns the number of bytes this call transferred.
int64_t download_to(const std::string& url, const std::filesystem::path& part, const DownloadOptions& options = {});

// A small text resource (an MD5SUMS file), at most 1 MiB.
std::string fetch_text(const std::string& url);

// `base` + "/" + `name`, without a doubled slash.
std::string join_url(const std::string& base, const std::string& name);

}  // namespace petseg::fetch
