// Image decode/encode without OpenCV: JPEG through TurboJPEG (with DCT-domain scaled decoding), PNG through
// libpng. Decoders never trust the input: a bad file is an Error, never a crash. Errors carry no file name;
// callers prefix it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace petseg::image {

// The normalization of torchvision's ImageNet-pretrained weights (what the loader applies and overlays undo).
inline constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

enum class ImageFormat { kUnknown, kJpeg, kPng };

// 8-bit interleaved pixels, row-major: pixels[(y * width + x) * channels + c].
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int w, int h, int c) : width(w), height(h), channels(c), pixels(size_t(w) * h * c) {}
  uint8_t* row(int y) { return pixels.data() + size_t(y) * width * channels; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * width * channels; }
  uint8_t at(int x, int y, int c = 0) const { return pixels[(size_t(y) * width + x) * channels + c]; }
};

// What a file holds, read from its header without decoding the pixels.
struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;
  int height = 0;
  // The colour model as stored: "rgb", "grayscale", "palette", "rgba", "grayscale+alpha", "cmyk", "ycck".
  std::string color;
  int bit_depth = 8;
};

// What decoding did to reach 8-bit RGB; empty `conversions` means the file was already plain RGB.
struct DecodeInfo {
  ImageHeader header;
  std::vector<std::string> conversions;  // e.g. "palette->rgb", "png-named-jpg" is added by callers
  std::string warning;                   // a libjpeg warning the decode recovered from
  int decoded_width = 0;                 // after DCT scaling
  int decoded_height = 0;
};

// Largest images we accept (pixels per side and total); guards against decompression bombs.
inline constexpr int kMaxImageSide = 1 << 14;
inline constexpr int64_t kMaxImagePixels = int64_t(1) << 27;

ImageFormat sniff_format(const uint8_t* data, size_t size);
ImageHeader read_header(const uint8_t* data, size_t size);

// Decodes to 8-bit RGB, converting grayscale, palette, alpha (dropped, as PIL's convert("RGB")), 16-bit and
// CMYK. With min_width/min_height > 0 a JPEG is decoded at the smallest TurboJPEG scale whose size still covers
// them (the pixels a later downscale would throw away are never computed).
Image decode_rgb(const uint8_t* data, size_t size, DecodeInfo* info = nullptr, int min_width = 0, int min_height = 0);
// Decodes a mask (trimap) PNG to one 8-bit channel of raw values: palette indices stay indices, gray values are
// not rescaled, 16-bit values above 255 saturate at 255. A colour PNG whose channels differ is an Error.
Image decode_mask(const uint8_t* data, size_t size, DecodeInfo* info = nullptr);

struct PngOptions {
  std::vector<uint8_t> palette_rgb;  // when set (1 channel), write a palette PNG with these colours
  int compression_level = 6;
};
std::vector<uint8_t> encode_png(const Image& image, const PngOptions& options = {});
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 90);

}  // namespace petseg::image
