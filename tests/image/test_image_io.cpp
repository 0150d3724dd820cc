// data/image_io: conversions to RGB, raw mask values, scaled decoding, hostile input, and parity with PIL.
#include "image/image_io.h"

#include <gtest/gtest.h>

#include "core/check.h"
#include "core/fs.h"
#include "core/random.h"
#include "test_util.h"

namespace petseg::image {
namespace {

Image noise_image(int w, int h, int c, uint64_t seed) {
  Image img(w, h, c);
  Rng rng(seed);
  // Smooth-ish content so JPEG round trips stay close.
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int k = 0; k < c; ++k) img.row(y)[x * c + k] = uint8_t((x * 3 + y * 2 + k * 50 + rng.randint(0, 8)) & 255);
    }
  }
  return img;
}

TEST(ImageIo, SniffsFormats) {
  const auto png = encode_png(noise_image(8, 8, 3, 1));
  const auto jpg = encode_jpeg(noise_image(8, 8, 3, 1));
  EXPECT_EQ(sniff_format(png.data(), png.size()), ImageFormat::kPng);
  EXPECT_EQ(sniff_format(jpg.data(), jpg.size()), ImageFormat::kJpeg);
  const uint8_t junk[] = {'M', 'A', 'T', 'L', 'A', 'B'};
  EXPECT_EQ(sniff_format(junk, sizeof(junk)), ImageFormat::kUnknown);
}

TEST(ImageIo, RgbPngRoundTripIsExact) {
  const Image img = noise_image(37, 23, 3, 2);
  const auto bytes = encode_png(img);
  DecodeInfo info;
  const Image back = decode_rgb(bytes.data(), bytes.size(), &info);
  EXPECT_EQ(back.pixels, img.pixels);
  EXPECT_TRUE(info.conversions.empty());
}

TEST(ImageIo, GrayscaleJpegBecomesRgbWithEqualChannels) {
  const Image gray = noise_image(40, 30, 1, 3);
  const auto bytes = encode_jpeg(gray, 95);
  DecodeInfo info;
  const Image rgb = decode_rgb(bytes.data(), bytes.size(), &info);
  ASSERT_EQ(rgb.channels, 3);
  ASSERT_EQ(info.conversions, std::vector<std::string>{"grayscale->rgb"});
  for (size_t i = 0; i < size_t(rgb.width) * rgb.height; ++i) {
    ASSERT_EQ(rgb.pixels[3 * i], rgb.pixels[3 * i + 1]);
    ASSERT_EQ(rgb.pixels[3 * i], rgb.pixels[3 * i + 2]);
    ASSERT_NEAR(rgb.pixels[3 * i], gray.pixels[i], 12);
  }
}

TEST(ImageIo, PalettePngExpandsToItsColours) {
  Image idx(5, 4, 1);
  for (size_t i = 0; i < idx.pixels.size(); ++i) idx.pixels[i] = uint8_t(i % 3);
  PngOptions opt;
  opt.palette_rgb = {255, 0, 0, 0, 255, 0, 10, 20, 30};
  const auto bytes = encode_png(idx, opt);
  DecodeInfo info;
  const Image rgb = decode_rgb(bytes.data(), bytes.size(), &info);
  EXPECT_EQ(info.header.color, "palette");
  EXPECT_EQ(info.conversions, std::vector<std::string>{"palette->rgb"});
  for (size_t i = 0; i < idx.pixels.size(); ++i) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(rgb.pixels[3 * i + c], opt.palette_rgb[3 * idx.pixels[i] + c]);
  }
  // As a mask, the same file yields indices, not colours.
  const Image mask = decode_mask(bytes.data(), bytes.size());
  EXPECT_EQ(mask.pixels, idx.pixels);
}

TEST(ImageIo, RgbaDropsAlphaAsPilConvertDoes) {
  Image rgba = noise_image(9, 7, 4, 5);
  const auto bytes = encode_png(rgba);
  DecodeInfo info;
  const Image rgb = decode_rgb(bytes.data(), bytes.size(), &info);
  EXPECT_EQ(info.conversions, std::vector<std::string>{"rgba->rgb"});
  for (size_t i = 0; i < size_t(9 * 7); ++i) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(rgb.pixels[3 * i + c], rgba.pixels[4 * i + c]);
  }
}

TEST(ImageIo, MaskKeepsRawValuesAndRejectsColour) {
  Image m(6, 3, 1);
  for (size_t i = 0; i < m.pixels.size(); ++i) m.pixels[i] = uint8_t(1 + i % 3);
  const auto bytes = encode_png(m);
  EXPECT_EQ(decode_mask(bytes.data(), bytes.size()).pixels, m.pixels);
  // An RGB trimap with equal channels is accepted, a truly coloured one is not.
  Image gray3(6, 3, 3);
  for (size_t i = 0; i < m.pixels.size(); ++i) std::fill_n(&gray3.pixels[3 * i], 3, m.pixels[i]);
  const auto g3 = encode_png(gray3);
  EXPECT_EQ(decode_mask(g3.data(), g3.size()).pixels, m.pixels);
  gray3.pixels[4] = 9;
  const auto colour = encode_png(gray3);
  EXPECT_THROW(decode_mask(colour.data(), colour.size()), Error);
}

TEST(ImageIo, ScaledJpegDecodeCoversTheRequestedSize) {
  const auto bytes = encode_jpeg(noise_image(400, 300, 3, 6));
  DecodeInfo info;
  const Image small = decode_rgb(bytes.data(), bytes.size(), &info, 100, 75);
  EXPECT_EQ(small.width, 100);
  EXPECT_EQ(small.height, 75);
  const Image mid = decode_rgb(bytes.data(), bytes.size(), &info, 101, 60);
  EXPECT_GE(mid.width, 101);
  EXPECT_LT(mid.width, 400);
  const Image full = decode_rgb(bytes.data(), bytes.size(), &info, 500, 10);
  EXPECT_EQ(full.width, 400);
  EXPECT_EQ(info.header.width, 400);
}

TEST(ImageIo, TruncatedJpegIsRejected) {
  auto bytes = encode_jpeg(noise_image(200, 150, 3, 7));
  bytes.resize(bytes.size() / 2);
  try {
    decode_rgb(bytes.data(), bytes.size());
    FAIL() << "a truncated JPEG decoded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("truncated JPEG", 0), 0u) << e.what();
  }
}

TEST(ImageIo, HostileInputIsAnErrorNotACrash) {
  Rng rng(8);
  std::vector<uint8_t> junk(512);
  for (auto& b : junk) b = uint8_t(rng.next());
  EXPECT_THROW(decode_rgb(junk.data(), junk.size()), Error);
  EXPECT_THROW(decode_rgb(junk.data(), 0), Error);
  // Valid signatures followed by garbage.
  auto png = encode_png(noise_image(16, 16, 3, 9));
  for (size_t cut : {8u, 20u, 40u, 60u}) {
    EXPECT_THROW(decode_rgb(png.data(), cut), Error) << "cut at " << cut;
    EXPECT_THROW(decode_mask(png.data(), cut), Error) << "cut at " << cut;
  }
  auto jpg = encode_jpeg(noise_image(16, 16, 3, 9));
  for (size_t i = 20; i < jpg.size(); i += 7) jpg[i] ^= 0x5a;
  try {
    decode_rgb(jpg.data(), jpg.size());  // may decode with a warning or fail; must not crash
  } catch (const Error&) {
  }
  // A PNG header that claims 100000 x 100000 pixels.
  png[16] = 0x00;
  png[17] = 0x01;
  png[18] = 0x86;
  png[19] = 0xA0;
  png[20] = 0x00;
  png[21] = 0x01;
  png[22] = 0x86;
  png[23] = 0xA0;
  EXPECT_THROW(decode_rgb(png.data(), png.size()), Error);
  // A bad file never poisons the decoder for the good files after it.
  const Image good = noise_image(24, 16, 3, 13);
  const auto good_jpg = encode_jpeg(good);
  EXPECT_EQ(decode_rgb(good_jpg.data(), good_jpg.size()).width, 24);
}

// Parity with the reference: PIL's Image.open(...).convert("RGB") on the same files (same libjpeg-turbo
// settings: accurate DCT, fancy upsampling), and PIL's raw mask values.
TEST(ImageIo, MatchesPilDecoding) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  auto save = [&](const char* name, const std::vector<uint8_t>& b) {
    write_file_atomic(dir / name, b.data(), b.size());
  };
  save("color.jpg", encode_jpeg(noise_image(61, 47, 3, 10), 85));
  save("gray.jpg", encode_jpeg(noise_image(33, 20, 1, 11), 85));
  PngOptions pal;
  pal.palette_rgb = {1, 2, 3, 200, 100, 50, 7, 250, 9};
  Image idx(13, 9, 1);
  for (size_t i = 0; i < idx.pixels.size(); ++i) idx.pixels[i] = uint8_t(i * 7 % 3);
  save("palette.png", encode_png(idx, pal));
  save("rgba.png", encode_png(noise_image(12, 10, 4, 12)));
  for (const char* name : {"color.jpg", "gray.jpg", "palette.png", "rgba.png"}) {
    const auto path = dir / name;
    const std::string out = testing::run_python(
        "from PIL import Image\nimport sys\n"
        "sys.stdout.buffer.write(Image.open('" +
        path.string() + "').convert('RGB').tobytes())");
    const auto bytes = read_file(path);
    const Image ours = decode_rgb(bytes.data(), bytes.size());
    ASSERT_EQ(out.size(), ours.pixels.size()) << name;
    int max_diff = 0;
    for (size_t i = 0; i < out.size(); ++i)
      max_diff = std::max(max_diff, std::abs(int(uint8_t(out[i])) - ours.pixels[i]));
    EXPECT_LE(max_diff, 1) << name;
  }
}

}  // namespace
}  // namespace petseg::image
