// One image/mask pair decoded and validated, for every mask encoding: what the loader, prepare and synth's checks
// share. Nothing here deletes or rewrites a user's file: conversions happen when the loader decodes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>

#include "core/check.h"
#include "data/masks.h"
#include "image/image_io.h"

namespace petseg::data {

namespace fs = std::filesystem;

// A sample that cannot be used; `code` is stable (tests and the manifest use it), what() names the file.
class SampleError : public Error {
 public:
  SampleError(std::string code, fs::path file, std::string detail)
      : Error(file.string() + ": " + detail),
        code_(std::move(code)),
        file_(std::move(file)),
        detail_(std::move(detail)) {}
  const std::string& code() const { return code_; }
  const fs::path& file() const { return file_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string code_;
  fs::path file_;
  std::string detail_;
};

// An image/mask pair decoded and validated.
struct DecodedPair {
  image::Image rgb;   // 8-bit RGB, possibly DCT-scaled (see load_pair)
  image::Image mask;  // original size, 1 channel: a trimap's raw values (1..3) or class indices (255: ignore)
  int width = 0;      // original image size
  int height = 0;
  image::DecodeInfo image_info;
};

// Decodes and validates one pair, throwing SampleError on anything unusable. When `min_size` is given it is
// called with the original size and returns the smallest decode size the caller needs (scaled JPEG decoding).
// `spec` says how the mask stores its labels (by default: a trimap).
using MinSizeFn = std::function<std::pair<int, int>(int width, int height)>;
void load_pair(const fs::path& image, const fs::path& mask, DecodedPair& out, const MinSizeFn& min_size = {},
               const MaskSpec& spec = {});
// load_pair's two halves on bytes already read (the paths only name the files in errors): the image, then the
// mask, which is checked against the image's size and for values its encoding does not allow.
void decode_pair_image(const uint8_t* data, size_t size, const fs::path& image, DecodedPair& out,
                       const MinSizeFn& min_size = {});
void decode_pair_mask(const uint8_t* data, size_t size, const fs::path& mask, const MaskSpec& spec, DecodedPair& out);
// The trimap case of decode_pair_mask: values outside {1, 2, 3} are rejected.
void decode_pair_trimap(const uint8_t* data, size_t size, const fs::path& trimap, DecodedPair& out);

}  // namespace petseg::data
