// JPEG (TurboJPEG) and PNG (libpng) codecs on memory buffers. libpng reports errors by longjmp: every libpng
// call sits in a function whose only state that outlives the jump lives in the caller's frame.
#include "image/image_io.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>

#include "core/check.h"

namespace petseg::image {
namespace {

// ---------------------------------------------------------------- format sniffing

constexpr uint8_t kPngMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

void check_dims(int w, int h) {
  PETSEG_CHECK(w > 0 && h > 0, "image has no pixels (", w, "x", h, ")");
  PETSEG_CHECK(w <= kMaxImageSide && h <= kMaxImageSide && int64_t(w) * h <= kMaxImagePixels, "image is ", w, "x", h,
               ", larger than petseg accepts (", kMaxImageSide, " per side)");
}

// ---------------------------------------------------------------- TurboJPEG

struct TjHandles {
  tjhandle decoder = nullptr;
  tjhandle encoder = nullptr;
  ~TjHandles() {
    if (decoder) tjDestroy(decoder);
    if (encoder) tjDestroy(encoder);
  }
  tjhandle dec() {
    if (!decoder) decoder = tjInitDecompress();
    PETSEG_CHECK(decoder, "cannot initialise TurboJPEG decoder");
    return decoder;
  }
  // After a failed or warned decode, some libjpeg-turbo versions leave the handle mid-stream, and the next good
  // file then fails ("Unsupported marker type"): a bad file must never poison the ones after it.
  void reset_decoder() {
    if (decoder) tjDestroy(decoder);
    decoder = nullptr;
  }
  tjhandle enc() {
    if (!encoder) encoder = tjInitCompress();
    PETSEG_CHECK(encoder, "cannot initialise TurboJPEG encoder");
    return encoder;
  }
};
// One handle per thread: TurboJPEG handles are not thread-safe, and creating one per image costs more than a
// small decode.
thread_local TjHandles t_tj;

const char* jpeg_color_name(int cs) {
  switch (cs) {
    case TJCS_GRAY:
      return "grayscale";
    case TJCS_CMYK:
      return "cmyk";
    case TJCS_YCCK:
      return "ycck";
    default:
      return "rgb";
  }
}

ImageHeader jpeg_header(const uint8_t* data, size_t size, int* colorspace = nullptr) {
  tjhandle h = t_tj.dec();
  int w = 0, ht = 0, subsamp = 0, cs = 0;
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &w, &ht, &subsamp, &cs) != 0) {
    const std::string error = tjGetErrorStr2(h);
    t_tj.reset_decoder();
    PETSEG_FAIL("not a valid JPEG (", error, ")");
  }
  check_dims(w, ht);
  if (colorspace) *colorspace = cs;
  ImageHeader header;
  header.format = ImageFormat::kJpeg;
  header.width = w;
  header.height = ht;
  header.color = jpeg_color_name(cs);
  return header;
}

// A JPEG whose decoder ran out of data: the classic truncated download. Entropy-coded data can never contain
// FF D9, so a file that does not end with the end-of-image marker (allowing trailing padding) was cut short.
bool has_end_marker(const uint8_t* data, size_t size) {
  const size_t tail = std::min<size_t>(size, 4096);
  for (size_t i = size - tail; i + 1 < size; ++i) {
    if (data[i] == 0xFF && data[i + 1] == 0xD9) return true;
  }
  return false;
}

Image decode_jpeg(const uint8_t* data, size_t size, DecodeInfo* info, int min_w, int min_h) {
  int cs = 0;
  const ImageHeader header = jpeg_header(data, size, &cs);
  tjhandle h = t_tj.dec();

  tjscalingfactor best{1, 1};
  if (min_w > 0 || min_h > 0) {
    int n = 0;
    const tjscalingfactor* factors = tjGetScalingFactors(&n);
    for (int i = 0; i < n; ++i) {
      const tjscalingfactor f = factors[i];
      if (f.num > f.denom) continue;
      const int sw = TJSCALED(header.width, f), sh = TJSCALED(header.height, f);
      if (sw >= min_w && sh >= min_h && sw < TJSCALED(header.width, best)) best = f;
    }
  }
  const int w = TJSCALED(header.width, best), ht = TJSCALED(header.height, best);
  const bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
  Image raw(w, ht, cmyk ? 4 : 3);
  const int rc = tjDecompress2(h, data, static_cast<unsigned long>(size), raw.pixels.data(), w, 0, ht,
                               cmyk ? TJPF_CMYK : TJPF_RGB, 0);
  std::string warning;
  if (rc != 0) {
    const bool recovered = tjGetErrorCode(h) == TJERR_WARNING;
    warning = tjGetErrorStr2(h);
    t_tj.reset_decoder();
    if (!recovered) PETSEG_FAIL("cannot decode JPEG (", warning, ")");
    if (warning.find("Premature end") != std::string::npos || !has_end_marker(data, size)) {
      PETSEG_FAIL("truncated JPEG (", warning, ")");
    }
  }
  if (info) {
    info->header = header;
    info->warning = warning;
    info->decoded_width = w;
    info->decoded_height = ht;
    if (cs == TJCS_GRAY) info->conversions.push_back("grayscale->rgb");
    if (cmyk) info->conversions.push_back("cmyk->rgb");
  }
  if (!cmyk) return raw;
  // Adobe CMYK JPEGs (the common kind) store inverted ink values, so RGB = value * K / 255.
  Image rgb(w, ht, 3);
  const size_t n = size_t(w) * ht;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &raw.pixels[i * 4];
    for (int c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = static_cast<uint8_t>((p[c] * p[3] + 127) / 255);
  }
  return rgb;
}

// ---------------------------------------------------------------- libpng

struct PngIo {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  std::vector<uint8_t>* out = nullptr;
  char error[256] = {0};
};

void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  if (n > io->size - io->pos) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(dst, io->data + io->pos, n);
  io->pos += n;
}

void png_write_mem(png_structp png, png_bytep src, png_size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  io->out->insert(io->out->end(), src, src + n);
}

void png_flush_mem(png_structp) {}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* io = static_cast<PngIo*>(png_get_error_ptr(png));
  std::snprintf(io->error, sizeof(io->error), "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

const char* png_color_name(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
      return "grayscale";
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return "grayscale+alpha";
    case PNG_COLOR_TYPE_PALETTE:
      return "palette";
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return "rgba";
    default:
      return "rgb";
  }
}

enum class PngTarget { kHeaderOnly, kRgb, kRawValues };

struct PngResult {
  ImageHeader header;
  Image image;  // kRgb: 3 channels; kRawValues: 1 or 3 channels at 8 or 16 bits (see bytes_per_sample)
  int bytes_per_sample = 1;
  std::vector<uint8_t*> rows;  // here, not in png_decode's frame, so a longjmp cannot leak it
};

// Returns false with io.error set when libpng failed; `out` lives in the caller's frame, so the jump leaves it
// in a destructible state.
bool png_decode(PngIo& io, PngTarget target, PngResult* out) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, png_on_error, png_on_warning);
  if (!png) {
    std::snprintf(io.error, sizeof(io.error), "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &io, png_read_mem);
  png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
  png_set_chunk_malloc_max(png, 64u << 20);
  png_read_info(png, info);
  const int w = static_cast<int>(png_get_image_width(png, info));
  const int h = static_cast<int>(png_get_image_height(png, info));
  const int color_type = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  if (int64_t(w) * h > kMaxImagePixels) png_error(png, "image larger than petseg accepts");
  out->header.format = ImageFormat::kPng;
  out->header.width = w;
  out->header.height = h;
  out->header.color = png_color_name(color_type);
  out->header.bit_depth = depth;
  if (target == PngTarget::kHeaderOnly) {
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
  }
  if (target == PngTarget::kRgb) {
    if (depth == 16) png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) {
      if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
      png_set_gray_to_rgb(png);
    }
    if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  } else {
    if (depth < 8) png_set_packing(png);  // keeps values (indices, gray levels) unscaled
    if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  const int bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
  const size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != size_t(w) * channels * bytes) png_error(png, "unexpected row layout");
  out->bytes_per_sample = bytes;
  out->image.width = w;
  out->image.height = h;
  out->image.channels = channels;
  out->image.pixels.resize(rowbytes * h);
  out->rows.resize(h);
  for (int y = 0; y < h; ++y) out->rows[y] = out->image.pixels.data() + rowbytes * y;
  png_read_image(png, out->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

PngResult decode_png(const uint8_t* data, size_t size, PngTarget target) {
  PngIo io;
  io.data = data;
  io.size = size;
  PngResult result;
  if (!png_decode(io, target, &result)) PETSEG_FAIL("cannot decode PNG (", io.error, ")");
  if (target != PngTarget::kHeaderOnly) check_dims(result.image.width, result.image.height);
  return result;
}

bool png_encode(PngIo& io, const Image& image, std::vector<png_color>& colors, int level) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, png_on_error, png_on_warning);
  if (!png) {
    std::snprintf(io.error, sizeof(io.error), "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, &io, png_write_mem, png_flush_mem);
  png_set_compression_level(png, level);
  const int color_type = !colors.empty()       ? PNG_COLOR_TYPE_PALETTE
                         : image.channels == 1 ? PNG_COLOR_TYPE_GRAY
                         : image.channels == 3 ? PNG_COLOR_TYPE_RGB
                                               : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(png, info, image.width, image.height, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!colors.empty()) png_set_PLTE(png, info, colors.data(), static_cast<int>(colors.size()));
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y) png_write_row(png, const_cast<png_bytep>(image.row(y)));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

ImageFormat sniff_format(const uint8_t* data, size_t size) {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::kJpeg;
  if (size >= 8 && std::memcmp(data, kPngMagic, 8) == 0) return ImageFormat::kPng;
  return ImageFormat::kUnknown;
}

ImageHeader read_header(const uint8_t* data, size_t size) {
  PETSEG_CHECK(size > 0, "empty file (0 bytes)");
  switch (sniff_format(data, size)) {
    case ImageFormat::kJpeg:
      return jpeg_header(data, size);
    case ImageFormat::kPng:
      return decode_png(data, size, PngTarget::kHeaderOnly).header;
    default:
      PETSEG_FAIL("not a JPEG or PNG image");
  }
}

Image decode_rgb(const uint8_t* data, size_t size, DecodeInfo* info, int min_width, int min_height) {
  PETSEG_CHECK(size > 0, "empty file (0 bytes)");
  const ImageFormat format = sniff_format(data, size);
  if (format == ImageFormat::kJpeg) return decode_jpeg(data, size, info, min_width, min_height);
  PETSEG_CHECK(format == ImageFormat::kPng, "not a JPEG or PNG image");
  PngResult r = decode_png(data, size, PngTarget::kRgb);
  if (info) {
    info->header = r.header;
    info->decoded_width = r.image.width;
    info->decoded_height = r.image.height;
    const std::string& c = r.header.color;
    if (c != "rgb") info->conversions.push_back(c + "->rgb");
    if (r.header.bit_depth == 16) info->conversions.push_back("16bit->8bit");
  }
  return std::move(r.image);
}

Image decode_mask(const uint8_t* data, size_t size, DecodeInfo* info) {
  PETSEG_CHECK(size > 0, "empty file (0 bytes)");
  PETSEG_CHECK(sniff_format(data, size) == ImageFormat::kPng, "not a PNG image");
  PngResult r = decode_png(data, size, PngTarget::kRawValues);
  if (info) {
    info->header = r.header;
    info->decoded_width = r.image.width;
    info->decoded_height = r.image.height;
  }
  const Image& src = r.image;
  const size_t n = size_t(src.width) * src.height;
  if (src.channels == 1 && r.bytes_per_sample == 1) return std::move(r.image);
  Image mask(src.width, src.height, 1);
  const int stride = src.channels * r.bytes_per_sample;
  for (size_t i = 0; i < n; ++i) {
    int value[3] = {0, 0, 0};
    for (int c = 0; c < src.channels; ++c) {
      const uint8_t* p = &src.pixels[i * stride + c * r.bytes_per_sample];
      value[c] = r.bytes_per_sample == 2 ? (p[0] << 8 | p[1]) : p[0];
    }
    if (src.channels == 3 && (value[0] != value[1] || value[0] != value[2])) {
      PETSEG_FAIL("mask is a colour image (pixel ", i % src.width, ",", i / src.width, " is ", value[0], ",", value[1],
                  ",", value[2], "); expected one channel of class values");
    }
    mask.pixels[i] = static_cast<uint8_t>(std::min(value[0], 255));
  }
  return mask;
}

std::vector<uint8_t> encode_png(const Image& image, const PngOptions& options) {
  PETSEG_CHECK(image.channels == 1 || image.channels == 3 || image.channels == 4, "cannot write a ", image.channels,
               "-channel PNG");
  PETSEG_CHECK(image.pixels.size() == size_t(image.width) * image.height * image.channels,
               "image buffer does not match its size");
  const bool palette = !options.palette_rgb.empty();
  PETSEG_CHECK(
      !palette || (image.channels == 1 && options.palette_rgb.size() % 3 == 0 && options.palette_rgb.size() <= 256 * 3),
      "a palette PNG needs one channel and at most 256 RGB colours");
  std::vector<uint8_t> out;
  std::vector<png_color> colors;
  for (size_t i = 0; i + 2 < options.palette_rgb.size(); i += 3) {
    colors.push_back({options.palette_rgb[i], options.palette_rgb[i + 1], options.palette_rgb[i + 2]});
  }
  PngIo io;
  io.out = &out;
  if (!png_encode(io, image, colors, options.compression_level)) PETSEG_FAIL("cannot encode PNG (", io.error, ")");
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  PETSEG_CHECK(image.channels == 1 || image.channels == 3, "cannot write a ", image.channels, "-channel JPEG");
  tjhandle h = t_tj.enc();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const bool gray = image.channels == 1;
  if (tjCompress2(h, image.pixels.data(), image.width, 0, image.height, gray ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                  gray ? TJSAMP_GRAY : TJSAMP_420, quality, 0) != 0) {
    if (buf) tjFree(buf);
    PETSEG_FAIL("cannot encode JPEG (", tjGetErrorStr2(h), ")");
  }
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  return out;
}

}  // namespace petseg::image
