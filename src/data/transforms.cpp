// Fused joint transforms. Resampling is PIL's separable antialiased filter (triangle kernel widened by the
// downscale factor), evaluated only over the rows and columns the output crop needs.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/random.h"

namespace petseg::data {
namespace {

// Filter taps for output positions [begin, end) of an in_size -> out_size resize (PIL's precompute_coeffs with
// the bilinear filter).
struct Taps {
  int ksize = 0;
  std::vector<int> first;     // first source index per output position
  std::vector<int> count;     // number of source indices used
  std::vector<float> weight;  // ksize per output position, normalized to sum 1
};

void compute_taps(int in_size, int out_size, int begin, int end, Taps& taps) {
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const int n = end - begin;
  taps.first.resize(n);
  taps.count.resize(n);
  taps.weight.assign(size_t(n) * taps.ksize, 0.0f);
  for (int i = 0; i < n; ++i) {
    const double center = (begin + i + 0.5) * scale;
    const double inv = 1.0 / filterscale;
    int lo = static_cast<int>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int cnt = std::min(hi - lo, taps.ksize);
    double total = 0.0;
    float* w = &taps.weight[size_t(i) * taps.ksize];
    for (int k = 0; k < cnt; ++k) {
      const double x = std::abs((k + lo - center + 0.5) * inv);
      const double v = x < 1.0 ? 1.0 - x : 0.0;
      w[k] = static_cast<float>(v);
      total += v;
    }
    if (total > 0) {
      for (int k = 0; k < cnt; ++k) w[k] = static_cast<float>(w[k] / total);
    }
    taps.first[i] = lo;
    taps.count[i] = cnt;
  }
}

// Scratch buffers reused across samples by each worker thread.
struct Scratch {
  Taps h, v;
  std::vector<float> rows;   // horizontally resampled source rows
  std::vector<float> row_f;  // one source row span as float
  std::vector<float> acc;
  std::vector<int> mask_x, mask_y;
};
thread_local Scratch t_scratch;

// Resamples `src` (any size) as if resized to rw x rh, for resized rows [r0, r1) and columns [c0, c1). Calls
// emit(i, j, const float* channels) for each output position (i = row - r0, j = col - c0), values in [0, 255].
template <class Emit>
void resample_region(const image::Image& src, int rw, int rh, int r0, int r1, int c0, int c1, Emit&& emit) {
  Scratch& s = t_scratch;
  const int C = src.channels;
  compute_taps(src.width, rw, c0, c1, s.h);
  compute_taps(src.height, rh, r0, r1, s.v);
  const int ncols = c1 - c0, nrows = r1 - r0;
  if (ncols <= 0 || nrows <= 0) return;
  const int sy0 = s.v.first[0];
  const int sy1 = s.v.first[nrows - 1] + s.v.count[nrows - 1];
  s.rows.resize(size_t(sy1 - sy0) * ncols * C);
  // Each source byte feeds several taps: convert the needed span of a row to float once, not once per tap.
  const int sx0 = s.h.first[0];
  const int sx1 = s.h.first[ncols - 1] + s.h.count[ncols - 1];
  s.row_f.resize(size_t(sx1 - sx0) * C);
  for (int sy = sy0; sy < sy1; ++sy) {
    const uint8_t* in = src.row(sy) + size_t(sx0) * C;
    float* rf = s.row_f.data();
    for (size_t t = 0; t < s.row_f.size(); ++t) rf[t] = in[t];
    float* out = &s.rows[size_t(sy - sy0) * ncols * C];
    for (int j = 0; j < ncols; ++j) {
      const float* w = &s.h.weight[size_t(j) * s.h.ksize];
      const float* p = rf + size_t(s.h.first[j] - sx0) * C;
      const int cnt = s.h.count[j];
      if (C == 3) {
        float a0 = 0, a1 = 0, a2 = 0;
        for (int k = 0; k < cnt; ++k) {
          a0 += w[k] * p[3 * k];
          a1 += w[k] * p[3 * k + 1];
          a2 += w[k] * p[3 * k + 2];
        }
        out[3 * j] = a0;
        out[3 * j + 1] = a1;
        out[3 * j + 2] = a2;
      } else {
        for (int c = 0; c < C; ++c) {
          float a = 0;
          for (int k = 0; k < cnt; ++k) a += w[k] * p[C * k + c];
          out[C * j + c] = a;
        }
      }
    }
  }
  std::vector<float>& acc = s.acc;
  acc.resize(size_t(ncols) * C);
  for (int i = 0; i < nrows; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const float* w = &s.v.weight[size_t(i) * s.v.ksize];
    const int first = s.v.first[i] - sy0;
    for (int k = 0; k < s.v.count[i]; ++k) {
      const float wk = w[k];
      const float* row = &s.rows[size_t(first + k) * ncols * C];
      for (size_t t = 0; t < acc.size(); ++t) acc[t] += wk * row[t];
    }
    for (int j = 0; j < ncols; ++j) emit(i, j, &acc[size_t(j) * C]);
  }
}

// PIL's nearest: source = floor((dst + 0.5) * in / out).
inline int nearest_index(int dst, int in_size, int out_size) {
  const int v = static_cast<int>((dst + 0.5) * in_size / out_size);
  return std::min(v, in_size - 1);
}

}  // namespace

MaskLut trimap_lut(BorderMode border) {
  MaskLut lut;
  lut.fill(uint8_t(kIgnoreIndex));
  lut[1] = 0;
  lut[2] = 1;
  lut[3] = border == BorderMode::kClass ? 2 : uint8_t(kIgnoreIndex);
  return lut;
}

BorderMode parse_border_mode(const std::string& name) {
  check_choice("--border", name, kBorderChoices);
  return name == "3class" ? BorderMode::kClass : BorderMode::kIgnore;
}

const char* border_mode_name(BorderMode mode) { return mode == BorderMode::kClass ? "3class" : "ignore"; }

int num_classes(BorderMode mode) { return mode == BorderMode::kClass ? 3 : 2; }

const char* class_name(int index) {
  static const char* kNames[] = {"pet", "background", "border"};
  return index >= 0 && index < 3 ? kNames[index] : "?";
}

int find_invalid_trimap_value(const image::Image& trimap) {
  // Branch-free pass first (it vectorizes); the search for the culprit only runs on bad trimaps.
  uint8_t bad = 0;
  for (uint8_t v : trimap.pixels) bad |= static_cast<uint8_t>(uint8_t(v - 1) > 2);
  if (!bad) return -1;
  for (uint8_t v : trimap.pixels) {
    if (v < 1 || v > 3) return v;
  }
  return -1;
}

Geometry train_geometry(int width, int height, int out_size, uint64_t sample_seed, const AugmentOptions& options) {
  PETSEG_CHECK(width > 0 && height > 0 && out_size > 0, "bad geometry request ", width, "x", height, " -> ", out_size);
  Rng rng(sample_seed);
  const int min_size = static_cast<int>(options.min_scale * out_size);
  const int max_size = static_cast<int>(options.max_scale * out_size);
  const int size = static_cast<int>(rng.randint(std::max(1, min_size), std::max(1, max_size)));
  Geometry g;
  g.out_size = out_size;
  // torchvision's resize of the shorter side: the longer one is truncated, not rounded.
  if (width <= height) {
    g.resized_width = size;
    g.resized_height = std::max(1, static_cast<int>(int64_t(size) * height / width));
  } else {
    g.resized_height = size;
    g.resized_width = std::max(1, static_cast<int>(int64_t(size) * width / height));
  }
  g.flip = rng.coin(options.flip_probability);
  const int padded_w = std::max(g.resized_width, out_size);
  const int padded_h = std::max(g.resized_height, out_size);
  g.crop_y = static_cast<int>(rng.randint(0, padded_h - out_size));
  g.crop_x = static_cast<int>(rng.randint(0, padded_w - out_size));
  return g;
}

Geometry eval_geometry(int out_size) {
  Geometry g;
  g.out_size = out_size;
  g.resized_width = out_size;
  g.resized_height = out_size;
  return g;
}

namespace {

// The part of the output the resized image covers (the rest is padding), and where it starts in the resized image.
struct Window {
  int nrows, ncols, r0, c0;
};

Window window_of(const Geometry& g) {
  const int S = g.out_size, rw = g.resized_width, rh = g.resized_height;
  const int vy1 = std::min(g.crop_y + S, rh), vx1 = std::min(g.crop_x + S, rw);
  return {std::max(0, vy1 - g.crop_y), std::max(0, vx1 - g.crop_x), g.crop_y, g.flip ? rw - vx1 : g.crop_x};
}

}  // namespace

void render_image(const image::Image& rgb, const Geometry& g, float* image_chw) {
  PETSEG_CHECK(rgb.channels == 3, "render_image needs an RGB image");
  const int S = g.out_size, rw = g.resized_width, rh = g.resized_height;
  const size_t plane = size_t(S) * S;
  const Window w = window_of(g);
  const int nrows = w.nrows, ncols = w.ncols, r0 = w.r0, c0 = w.c0;  // (lambdas cannot capture structured bindings)
  float scale[3], bias[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * image::kImageNetStd[c]);
    bias[c] = -image::kImageNetMean[c] / image::kImageNetStd[c];  // the padding value 0 after normalization
  }
  // Padding: torchvision pads the uint8 image with 0 (and the mask with the ignore index) before normalizing.
  for (int y = 0; y < S; ++y) {
    const int x_begin = y < nrows ? ncols : 0;
    for (int c = 0; c < 3; ++c) std::fill_n(image_chw + c * plane + size_t(y) * S + x_begin, S - x_begin, bias[c]);
  }
  const bool flip = g.flip;
  resample_region(rgb, rw, rh, r0, r0 + nrows, c0, c0 + ncols, [&](int i, int j, const float* px) {
    const int x = flip ? ncols - 1 - j : j;
    const size_t o = size_t(i) * S + x;
    image_chw[o] = px[0] * scale[0] + bias[0];
    image_chw[plane + o] = px[1] * scale[1] + bias[1];
    image_chw[2 * plane + o] = px[2] * scale[2] + bias[2];
  });
}

void render_sample(const image::Image& rgb, const image::Image& trimap, const Geometry& g, BorderMode border,
                   float* image_chw, int64_t* mask) {
  render_sample(rgb, trimap, g, trimap_lut(border), image_chw, mask);
}

void render_sample(const image::Image& rgb, const image::Image& stored, const Geometry& g, const MaskLut& lut,
                   float* image_chw, int64_t* mask) {
  PETSEG_CHECK(rgb.channels == 3 && stored.channels == 1, "render_sample needs an RGB image and a 1-channel mask");
  render_image(rgb, g, image_chw);
  const int S = g.out_size, rw = g.resized_width, rh = g.resized_height;
  const Window w = window_of(g);
  const int nrows = w.nrows, ncols = w.ncols, r0 = w.r0, c0 = w.c0;  // (lambdas cannot capture structured bindings)
  const bool flip = g.flip;
  for (int y = 0; y < S; ++y) {
    const int x_begin = y < nrows ? ncols : 0;
    std::fill_n(mask + size_t(y) * S + x_begin, S - x_begin, kIgnoreIndex);
  }
  Scratch& s = t_scratch;
  s.mask_x.resize(ncols);
  s.mask_y.resize(nrows);
  for (int j = 0; j < ncols; ++j) s.mask_x[j] = nearest_index(c0 + j, stored.width, rw);
  for (int i = 0; i < nrows; ++i) s.mask_y[i] = nearest_index(r0 + i, stored.height, rh);
  for (int i = 0; i < nrows; ++i) {
    const uint8_t* src = stored.row(s.mask_y[i]);
    int64_t* dst = mask + size_t(i) * S;
    for (int j = 0; j < ncols; ++j) dst[flip ? ncols - 1 - j : j] = lut[src[s.mask_x[j]]];
  }
}

void render_image_resized(const image::Image& rgb, int width, int height, float* image_chw) {
  PETSEG_CHECK(rgb.channels == 3, "render_image_resized needs an RGB image");
  PETSEG_CHECK(width > 0 && height > 0, "cannot resize to ", width, "x", height);
  const size_t plane = size_t(width) * height;
  float scale[3], bias[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * image::kImageNetStd[c]);
    bias[c] = -image::kImageNetMean[c] / image::kImageNetStd[c];
  }
  if (width == rgb.width && height == rgb.height) {
    // Nothing to resample: no float copy of the whole image in the scratch rows (an 8k x 8k image would need 800 MB).
    for (int y = 0; y < height; ++y) {
      const uint8_t* in = rgb.row(y);
      for (int x = 0; x < width; ++x) {
        const size_t o = size_t(y) * width + x;
        for (int c = 0; c < 3; ++c) image_chw[c * plane + o] = float(in[3 * x + c]) * scale[c] + bias[c];
      }
    }
    return;
  }
  resample_region(rgb, width, height, 0, height, 0, width, [&](int i, int j, const float* px) {
    const size_t o = size_t(i) * width + j;
    for (int c = 0; c < 3; ++c) image_chw[c * plane + o] = px[c] * scale[c] + bias[c];
  });
}

void render_mask_resized(const image::Image& stored, int width, int height, const MaskLut& lut, int64_t* mask) {
  PETSEG_CHECK(stored.channels == 1, "render_mask_resized needs a 1-channel mask");
  PETSEG_CHECK(width > 0 && height > 0, "cannot resize to ", width, "x", height);
  std::vector<int> xs(width);
  for (int x = 0; x < width; ++x) xs[x] = nearest_index(x, stored.width, width);
  for (int y = 0; y < height; ++y) {
    const uint8_t* src = stored.row(nearest_index(y, stored.height, height));
    int64_t* dst = mask + size_t(y) * width;
    for (int x = 0; x < width; ++x) dst[x] = lut[src[xs[x]]];
  }
}

image::Image resize_bilinear(const image::Image& src, int width, int height) {
  PETSEG_CHECK(width > 0 && height > 0, "cannot resize to ", width, "x", height);
  image::Image out(width, height, src.channels);
  const int C = src.channels;
  resample_region(src, width, height, 0, height, 0, width, [&](int i, int j, const float* px) {
    uint8_t* o = &out.pixels[(size_t(i) * width + j) * C];
    for (int c = 0; c < C; ++c) o[c] = static_cast<uint8_t>(std::clamp(px[c] + 0.5f, 0.0f, 255.0f));
  });
  return out;
}

image::Image resize_nearest(const image::Image& src, int width, int height) {
  PETSEG_CHECK(width > 0 && height > 0, "cannot resize to ", width, "x", height);
  image::Image out(width, height, src.channels);
  const int C = src.channels;
  for (int y = 0; y < height; ++y) {
    const uint8_t* in = src.row(nearest_index(y, src.height, height));
    uint8_t* o = out.row(y);
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = in + size_t(nearest_index(x, src.width, width)) * C;
      for (int c = 0; c < C; ++c) o[size_t(x) * C + c] = p[c];
    }
  }
  return out;
}

}  // namespace petseg::data
