// data/transforms: image and mask stay aligned through scale, flip, crop and padding; values stay intact;
// resampling matches PIL's.
#include "data/transforms.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/fs.h"
#include "core/random.h"
#include "test_util.h"

namespace petseg::data {
namespace {

// An image whose colour tells its trimap value: big blocks of 1/2/3 with colours 40/130/220 (all channels).
struct Scene {
  image::Image rgb, trimap;
};
Scene block_scene(int w, int h, int block, uint64_t seed) {
  Scene s{image::Image(w, h, 3), image::Image(w, h, 1)};
  Rng rng(seed);
  std::vector<uint8_t> values((w / block + 1) * (h / block + 1));
  for (auto& v : values) v = uint8_t(rng.randint(1, 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t v = values[(y / block) * (w / block + 1) + x / block];
      s.trimap.row(y)[x] = v;
      std::fill_n(&s.rgb.row(y)[3 * x], 3, uint8_t(40 + 90 * (v - 1)));
    }
  }
  return s;
}

float denorm(float v, int c) { return (v * image::kImageNetStd[c] + image::kImageNetMean[c]) * 255.0f; }

struct Rendered {
  std::vector<float> image;
  std::vector<int64_t> mask;
};
Rendered render(const Scene& s, const Geometry& g, BorderMode border = BorderMode::kClass) {
  const int S = g.out_size;
  Rendered r{std::vector<float>(3 * S * S, -100.0f), std::vector<int64_t>(S * S, -1)};
  render_sample(s.rgb, s.trimap, g, border, r.image.data(), r.mask.data());
  return r;
}

TEST(Transforms, UnscaledCropAndFlipAreExact) {
  const Scene s = block_scene(50, 40, 7, 1);
  for (bool flip : {false, true}) {
    Geometry g;
    g.out_size = 32;
    g.resized_width = 50;
    g.resized_height = 40;
    g.crop_x = 11;
    g.crop_y = 5;
    g.flip = flip;
    const Rendered r = render(s, g);
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 32; ++x) {
        const int fx = g.crop_x + x;  // column in the flipped image
        const int sx = flip ? 49 - fx : fx, sy = g.crop_y + y;
        ASSERT_EQ(r.mask[y * 32 + x], s.trimap.at(sx, sy) - 1) << x << "," << y << " flip " << flip;
        for (int c = 0; c < 3; ++c) ASSERT_NEAR(denorm(r.image[c * 1024 + y * 32 + x], c), s.rgb.at(sx, sy, c), 1e-3);
      }
    }
  }
}

TEST(Transforms, PaddingIsZeroImageAndIgnoreMask) {
  const Scene s = block_scene(20, 10, 5, 2);
  Geometry g;
  g.out_size = 24;
  g.resized_width = 20;
  g.resized_height = 10;
  const Rendered r = render(s, g);
  for (int y = 0; y < 24; ++y) {
    for (int x = 0; x < 24; ++x) {
      const bool pad = x >= 20 || y >= 10;
      if (!pad) continue;
      EXPECT_EQ(r.mask[y * 24 + x], kIgnoreIndex);
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(denorm(r.image[c * 576 + y * 24 + x], c), 0.0f, 1e-3);
    }
  }
}

// Under random scale/flip/crop, wherever a pixel's 5x5 neighbourhood has one class, the image colour must be that
// class's colour: the image and the mask went through the same geometry.
TEST(Transforms, RandomAugmentationKeepsImageAndMaskAligned) {
  const Scene s = block_scene(173, 129, 16, 3);
  const int S = 96;
  const float colour[3] = {40, 130, 220};
  std::set<int64_t> seen;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Geometry g = train_geometry(173, 129, S, seed);
    ASSERT_GE(std::min(g.resized_width, g.resized_height), S / 2);
    ASSERT_LE(std::min(g.resized_width, g.resized_height), 2 * S);
    const Rendered r = render(s, g);
    int checked = 0;
    for (int y = 2; y < S - 2; ++y) {
      for (int x = 2; x < S - 2; ++x) {
        const int64_t m = r.mask[y * S + x];
        seen.insert(m);
        ASSERT_TRUE(m == 0 || m == 1 || m == 2 || m == kIgnoreIndex) << m;
        if (m == kIgnoreIndex) continue;
        bool uniform = true;
        for (int dy = -2; dy <= 2 && uniform; ++dy)
          for (int dx = -2; dx <= 2 && uniform; ++dx) uniform = r.mask[(y + dy) * S + x + dx] == m;
        if (!uniform) continue;
        ++checked;
        ASSERT_NEAR(denorm(r.image[y * S + x], 0), colour[m], 2.0) << "seed " << seed << " at " << x << "," << y;
      }
    }
    EXPECT_GT(checked, 0);
  }
  EXPECT_EQ(seen.size(), 4u) << "expected pet, background, border and padding over 40 crops";
}

TEST(Transforms, BorderIgnoreMapsTrimap3To255) {
  const Scene s = block_scene(32, 32, 4, 4);
  const Geometry g = eval_geometry(32);
  const Rendered a = render(s, g, BorderMode::kClass), b = render(s, g, BorderMode::kIgnore);
  for (int i = 0; i < 32 * 32; ++i) {
    const int v = s.trimap.pixels[i];
    EXPECT_EQ(a.mask[i], v - 1);
    EXPECT_EQ(b.mask[i], v == 3 ? kIgnoreIndex : v - 1);
  }
}

TEST(Transforms, GeometryIsAFunctionOfTheSeed) {
  const Geometry a = train_geometry(300, 200, 128, 77), b = train_geometry(300, 200, 128, 77);
  EXPECT_EQ(a.resized_width, b.resized_width);
  EXPECT_EQ(a.crop_x, b.crop_x);
  EXPECT_EQ(a.crop_y, b.crop_y);
  EXPECT_EQ(a.flip, b.flip);
  int flips = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const Geometry g = train_geometry(300, 200, 128, seed);
    flips += g.flip;
    EXPECT_LE(g.crop_x, std::max(g.resized_width, 128) - 128);
    EXPECT_LE(g.crop_y, std::max(g.resized_height, 128) - 128);
    EXPECT_EQ(g.resized_height, std::min(g.resized_width, g.resized_height));  // shorter side is the height
  }
  EXPECT_GT(flips, 60);
  EXPECT_LT(flips, 140);
}

TEST(Transforms, InvalidTrimapValuesAreFound) {
  image::Image t(4, 4, 1);
  std::fill(t.pixels.begin(), t.pixels.end(), 2);
  EXPECT_EQ(find_invalid_trimap_value(t), -1);
  t.pixels[13] = 0;
  EXPECT_EQ(find_invalid_trimap_value(t), 0);
  t.pixels[13] = 4;
  EXPECT_EQ(find_invalid_trimap_value(t), 4);
}

// PIL's Image.resize(BILINEAR) (antialiased when shrinking) and NEAREST on the same pixels.
TEST(Transforms, ResizeMatchesPil) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  image::Image img(97, 61, 3);
  Rng rng(5);
  for (auto& p : img.pixels) p = uint8_t(rng.next());
  const auto png = image::encode_png(img);
  write_file_atomic(dir / "in.png", png.data(), png.size());
  for (auto [w, h] : {std::pair{40, 33}, std::pair{150, 200}, std::pair{97, 30}, std::pair{13, 7}}) {
    for (const char* mode : {"BILINEAR", "NEAREST"}) {
      const std::string out =
          testing::run_python("from PIL import Image\nimport sys\nim = Image.open('" + (dir / "in.png").string() +
                              "')\n"
                              "sys.stdout.buffer.write(im.resize((" +
                              std::to_string(w) + "," + std::to_string(h) + "), Image." + mode + ").tobytes())");
      const image::Image ours = std::string(mode) == "NEAREST" ? resize_nearest(img, w, h) : resize_bilinear(img, w, h);
      ASSERT_EQ(out.size(), ours.pixels.size());
      int max_diff = 0;
      for (size_t i = 0; i < out.size(); ++i)
        max_diff = std::max(max_diff, std::abs(int(uint8_t(out[i])) - ours.pixels[i]));
      EXPECT_LE(max_diff, std::string(mode) == "NEAREST" ? 0 : 1) << mode << " " << w << "x" << h;
    }
  }
}

}  // namespace
}  // namespace petseg::data
