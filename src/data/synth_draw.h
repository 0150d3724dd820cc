// What the synthetic data set writers share (internal to data/synth*.cpp): colours, value noise, ellipses and
// triangles, box counts over a mask, the one way synth writes a file, the kinds of broken file, and the interface
// each layout's style implements (the pets: synth_pets.cpp; VOC and folders: synth_classes.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/fs.h"
#include "core/random.h"
#include "data/synth.h"
#include "image/image_io.h"

namespace petseg::data::synth_draw {

struct Rgb {
  float r, g, b;
};

inline Rgb random_color(Rng& rng, float lo, float hi) {
  return {float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))};
}

// Smooth value noise in [0, 1): random values on a grid of `cell` pixels, bilinearly interpolated.
class ValueNoise {
 public:
  ValueNoise(uint64_t seed, float cell) : seed_(seed), inv_cell_(1.0f / cell) {}
  float operator()(float x, float y) const {
    x *= inv_cell_;
    y *= inv_cell_;
    const int ix = int(std::floor(x)), iy = int(std::floor(y));
    const float fx = x - ix, fy = y - iy;
    const float a = at(ix, iy), b = at(ix + 1, iy), c = at(ix, iy + 1), d = at(ix + 1, iy + 1);
    const float sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy);
    return (a * (1 - sx) + b * sx) * (1 - sy) + (c * (1 - sx) + d * sx) * sy;
  }

 private:
  float at(int x, int y) const {
    const uint64_t h = splitmix64(seed_ ^ (uint64_t(uint32_t(x)) * 0x9E3779B1ULL) ^ (uint64_t(uint32_t(y)) << 32));
    return float(h >> 40) / float(1 << 24);
  }
  uint64_t seed_;
  float inv_cell_;
};

struct Ellipse {
  float cx, cy, a, b, cos_t, sin_t;
  bool contains(float x, float y) const {
    const float dx = x - cx, dy = y - cy;
    const float u = (dx * cos_t + dy * sin_t) / a, v = (-dx * sin_t + dy * cos_t) / b;
    return u * u + v * v <= 1.0f;
  }
};

struct Triangle {
  float x[3], y[3];
  bool contains(float px, float py) const {
    auto edge = [&](int i, int j) { return (x[j] - x[i]) * (py - y[i]) - (y[j] - y[i]) * (px - x[i]); };
    const float e0 = edge(0, 1), e1 = edge(1, 2), e2 = edge(2, 0);
    return (e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0);
  }
};

inline Ellipse make_ellipse(float cx, float cy, float a, float b, float angle) {
  return {cx, cy, std::max(a, 2.0f), std::max(b, 2.0f), std::cos(angle), std::sin(angle)};
}

// Box count of `mask` over a (2r+1)^2 window, via a summed-area table.
inline std::vector<int> box_counts(const std::vector<uint8_t>& mask, int w, int h, int r) {
  std::vector<int> sat(size_t(w + 1) * (h + 1), 0);
  for (int y = 0; y < h; ++y) {
    int row = 0;
    for (int x = 0; x < w; ++x) {
      row += mask[size_t(y) * w + x];
      sat[size_t(y + 1) * (w + 1) + x + 1] = sat[size_t(y) * (w + 1) + x + 1] + row;
    }
  }
  std::vector<int> out(size_t(w) * h);
  for (int y = 0; y < h; ++y) {
    const int y0 = std::max(0, y - r), y1 = std::min(h, y + r + 1);
    for (int x = 0; x < w; ++x) {
      const int x0 = std::max(0, x - r), x1 = std::min(w, x + r + 1);
      out[size_t(y) * w + x] = sat[size_t(y1) * (w + 1) + x1] - sat[size_t(y0) * (w + 1) + x1] -
                               sat[size_t(y1) * (w + 1) + x0] + sat[size_t(y0) * (w + 1) + x0];
    }
  }
  return out;
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace petseg::data::synth_draw

namespace petseg::data {

// Bump whenever the pixels the VOC and folders writers draw change.
inline constexpr int kClassLayoutVersion = 2;

// Every kind of broken file --junk plants, for every layout (each layout meets some of them: SynthStyle::junk_kinds),
// and what it breaks: the image, the mask, or the sample's presence.
enum class Junk {
  kNone,
  kPngNamedJpg,      // a PNG in a .jpg file (converted)
  kGrayscale,        // a grayscale JPEG (converted)
  kPalette,          // a palette PNG (converted)
  kRgba,             // an RGBA PNG (converted)
  kTruncatedImage,   // a JPEG cut short
  kEmptyImage,       // zero bytes
  kUnreadableImage,  // not an image at all
  kNoMask,
  kMaskWrongSize,
  kMaskBadValue,  // a value the layout's masks cannot hold
  kUnreadableMask,
  kEmptyMask,
  kMissingImage,  // named in a split file, no image
};

// One sample to write.
struct SynthSample {
  std::string name;
  std::string image_ext = ".jpg";
  int split = 0;              // 0 the training split, 1 the validation split, -1 in no split file
  int subject = 0;            // the pets: its breed (oxford_breeds()); other layouts: the class drawn on top
  bool palette_mask = false;  // folders: a palette PNG mask rather than a gray one
  Junk junk = Junk::kNone;
};

struct SynthScene {
  image::Image rgb;
  image::Image mask;  // as the layout stores labels (trimap values, class indices; 255 ignore)
};

// What a synthetic set of one layout draws and where it puts it; synth.cpp runs the one pipeline (plan, draw every
// sample with its own generator, plant the junk, write the index files) for every layout.
class SynthStyle {
 public:
  virtual ~SynthStyle() = default;
  // The samples, those named in no split file included (junk apart: junk_kinds, junk_sample).
  virtual std::vector<SynthSample> samples(const SynthOptions& o) const = 0;
  virtual std::vector<Junk> junk_kinds(const SynthOptions& o) const = 0;
  virtual SynthSample junk_sample(int k, Junk junk, const SynthOptions& o) const = 0;
  virtual bool has_split_files(const SynthOptions& o) const = 0;
  virtual SynthScene render(int w, int h, uint64_t seed, const SynthSample& sample) const = 0;
  virtual std::string image_path(const SynthSample& sample) const = 0;  // relative to the set's folder
  virtual std::string mask_path(const SynthSample& sample) const = 0;
  virtual std::vector<uint8_t> encode_mask(const image::Image& mask, const SynthSample& sample,
                                           const SynthOptions& o) const = 0;
  virtual uint8_t bad_mask_value() const = 0;
  // What `petseg prepare` says of a sample with this junk: "rejected:missing_trimap", "converted:grayscale->rgb".
  virtual std::string expectation(Junk junk, const SynthOptions& o) const = 0;
  virtual void create_folders(const std::filesystem::path& root) const = 0;
  // Stray files the layout's real archives hold, and the split and class files.
  virtual void write_strays(const std::filesystem::path& root, const std::vector<SynthSample>& samples,
                            const SynthOptions& o, SynthReport& report) const = 0;
  virtual void write_index_files(const std::filesystem::path& root, const std::vector<SynthSample>& samples,
                                 const SynthOptions& o) const = 0;
};

const SynthStyle& pets_synth_style();                                  // data/synth_pets.cpp
const SynthStyle& class_synth_style(const std::string& layout);        // data/synth_classes.cpp: voc, folders
// The rejection codes prepare gives the junk that every layout shares, "mask" spelled as the layout spells it.
std::string common_expectation(Junk junk, const std::string& mask_word);

}  // namespace petseg::data
