// One image/mask pair decoded and validated for every mask encoding (data/pair.h).
#include "data/pair.h"

#include <string>
#include <vector>

#include "core/fs.h"
#include "data/layout.h"

namespace petseg::data {
namespace {

std::vector<uint8_t> read_part(const fs::path& path, const char* what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw SampleError(std::string("missing_") + what, path, std::string("missing (no ") + what + " file)");
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw SampleError(std::string("unreadable_") + what, path, e.what());
  }
  if (bytes.empty()) throw SampleError(std::string("empty_") + what, path, "empty file (0 bytes)");
  return bytes;
}

// `what` is "trimap" or "mask": it names the file in the message and starts the code.
void check_mask_size(int width, int height, const DecodedPair& out, const fs::path& path, const std::string& what) {
  if (width == out.width && height == out.height) return;
  throw SampleError(what + "_size_mismatch", path,
                    detail::str_cat(what, " is ", width, "x", height, ", its image is ", out.width, "x", out.height));
}

void decode_index_mask(const uint8_t* data, size_t size, const fs::path& path, const MaskSpec& spec, DecodedPair& out) {
  try {
    out.mask = image::decode_mask(data, size);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (starts_with(what, "mask is a colour image")) {
      throw SampleError("mask_color", path, what + "; masks drawn in colours are read with --class-colors FILE");
    }
    throw SampleError("unreadable_mask", path, what);
  }
  check_mask_size(out.mask.width, out.mask.height, out, path, "mask");
  const int bad = find_value_beyond(out.mask, spec.num_classes);
  if (bad >= 0) {
    throw SampleError("mask_bad_value", path,
                      detail::str_cat("mask holds the value ", bad, ", beyond the ", spec.num_classes, " classes (0..",
                                      spec.num_classes - 1, "; 255 = ignore)"));
  }
}

void decode_color_mask(const uint8_t* data, size_t size, const fs::path& path, const MaskSpec& spec, DecodedPair& out) {
  PETSEG_CHECK(spec.colors, path.string(), ": RGB masks need a class-colours file (--class-colors)");
  image::Image rgb;
  try {
    PETSEG_CHECK(image::sniff_format(data, size) == image::ImageFormat::kPng, "not a PNG image (masks are lossless)");
    rgb = image::decode_rgb(data, size);
  } catch (const Error& e) {
    throw SampleError("unreadable_mask", path, e.what());
  }
  check_mask_size(rgb.width, rgb.height, out, path, "mask");
  const int64_t bad = map_class_colors(rgb, *spec.colors, out.mask);
  if (bad >= 0) {
    const uint8_t* p = &rgb.pixels[size_t(bad) * 3];
    throw SampleError("mask_unknown_color", path,
                      detail::str_cat("colour ", format_color(uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2]),
                                      " (pixel ", bad % rgb.width, ",", bad / rgb.width,
                                      ") is not in the class colours file ", spec.colors->file.string()));
  }
}

}  // namespace

void load_pair(const fs::path& image, const fs::path& mask, DecodedPair& out, const MinSizeFn& min_size,
               const MaskSpec& spec) {
  const std::vector<uint8_t> image_bytes = read_part(image, "image");
  decode_pair_image(image_bytes.data(), image_bytes.size(), image, out, min_size);
  const std::vector<uint8_t> mask_bytes = read_part(mask, spec.encoding == MaskEncoding::kTrimap ? "trimap" : "mask");
  decode_pair_mask(mask_bytes.data(), mask_bytes.size(), mask, spec, out);
}

void decode_pair_image(const uint8_t* data, size_t size, const fs::path& image, DecodedPair& out,
                       const MinSizeFn& min_size) {
  out.image_info = image::DecodeInfo{};
  try {
    const image::ImageHeader header = image::read_header(data, size);
    int min_w = 0, min_h = 0;
    if (min_size) std::tie(min_w, min_h) = min_size(header.width, header.height);
    out.rgb = image::decode_rgb(data, size, &out.image_info, min_w, min_h);
    out.width = header.width;
    out.height = header.height;
  } catch (const SampleError&) {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    throw SampleError(starts_with(what, "truncated JPEG") ? "truncated_jpeg" : "unreadable_image", image, what);
  }
  std::string ext = image.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if ((ext == ".jpg" || ext == ".jpeg") && out.image_info.header.format == image::ImageFormat::kPng) {
    out.image_info.conversions.push_back("png_named_jpg");
  }
}

void decode_pair_mask(const uint8_t* data, size_t size, const fs::path& mask, const MaskSpec& spec, DecodedPair& out) {
  switch (spec.encoding) {
    case MaskEncoding::kTrimap:
      decode_pair_trimap(data, size, mask, out);
      break;
    case MaskEncoding::kClassIndex:
      decode_index_mask(data, size, mask, spec, out);
      break;
    case MaskEncoding::kRgbColors:
      decode_color_mask(data, size, mask, spec, out);
      break;
  }
}

void decode_pair_trimap(const uint8_t* data, size_t size, const fs::path& trimap, DecodedPair& out) {
  try {
    out.mask = image::decode_mask(data, size);
  } catch (const Error& e) {
    const std::string what = e.what();
    throw SampleError(starts_with(what, "mask is a colour image") ? "trimap_color" : "unreadable_trimap", trimap, what);
  }
  check_mask_size(out.mask.width, out.mask.height, out, trimap, "trimap");
  const int bad = find_invalid_trimap_value(out.mask);
  if (bad >= 0) {
    throw SampleError("trimap_bad_value", trimap,
                      detail::str_cat("trimap holds the value ", bad, " (valid: 1 pet, 2 background, 3 border)"));
  }
}

}  // namespace petseg::data
