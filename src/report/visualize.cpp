// Overlays and grids; pure pixel loops on CPU tensors.
#include "report/visualize.h"

#include <algorithm>
#include <cstdio>

#include "core/check.h"
#include "core/fs.h"

namespace petseg::report {

Color class_color(int64_t cls, const Palette& palette) {
  if (cls >= 0 && cls < int64_t(palette.size())) return palette[size_t(cls)];
  return {128, 128, 128};
}

std::string css_color(const Color& color) {
  char text[8];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", color[0], color[1], color[2]);
  return text;
}

image::Image denormalize(const at::Tensor& image_chw) {
  const at::Tensor t = image_chw.detach().to(at::kCPU).to(at::kFloat).contiguous();
  PETSEG_CHECK(t.dim() == 3 && t.size(0) == 3, "denormalize needs a [3,H,W] image");
  const int h = int(t.size(1)), w = int(t.size(2));
  image::Image out(w, h, 3);
  const float* p = t.data_ptr<float>();
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < h * w; ++i) {
      const float v = (p[c * h * w + i] * image::kImageNetStd[c] + image::kImageNetMean[c]) * 255.0f;
      out.pixels[size_t(i) * 3 + c] = uint8_t(std::clamp(v + 0.5f, 0.0f, 255.0f));
    }
  }
  return out;
}

image::Image overlay(const image::Image& rgb, const at::Tensor& mask_hw, float alpha, const Palette& palette) {
  const at::Tensor m = mask_hw.detach().to(at::kCPU).to(at::kLong).contiguous();
  PETSEG_CHECK(m.dim() == 2 && m.size(0) == rgb.height && m.size(1) == rgb.width, "mask and image sizes differ");
  image::Image out = rgb;
  const int64_t* cls = m.data_ptr<int64_t>();
  for (size_t i = 0; i < size_t(rgb.width) * rgb.height; ++i) {
    const Color c = class_color(cls[i], palette);
    for (int k = 0; k < 3; ++k) out.pixels[i * 3 + k] = uint8_t(rgb.pixels[i * 3 + k] * (1 - alpha) + c[k] * alpha);
  }
  return out;
}

image::Image prediction_grid(const at::Tensor& images, const at::Tensor& targets, const at::Tensor& predictions,
                             const Palette& palette) {
  const int n = int(images.size(0)), h = int(images.size(2)), w = int(images.size(3)), gap = 4;
  image::Image grid(3 * w + 2 * gap, n * h + (n - 1) * gap, 3);
  std::fill(grid.pixels.begin(), grid.pixels.end(), uint8_t(255));
  for (int r = 0; r < n; ++r) {
    const image::Image img = denormalize(images[r]);
    const image::Image panels[3] = {img, overlay(img, targets[r], 0.5f, palette),
                                    overlay(img, predictions[r], 0.5f, palette)};
    for (int p = 0; p < 3; ++p) {
      for (int y = 0; y < h; ++y) {
        std::copy_n(panels[p].row(y), size_t(w) * 3, grid.row(r * (h + gap) + y) + size_t(p) * (w + gap) * 3);
      }
    }
  }
  return grid;
}

void write_png(const std::filesystem::path& path, const image::Image& image) {
  const auto bytes = image::encode_png(image, {{}, /*compression_level=*/3});
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace petseg::report
