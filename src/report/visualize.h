// What the model sees and says, as pictures: overlays of class masks on images (a palette per data set) and a grid of
// validation samples, image | ground truth | prediction, written as PNG with libpng.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "image/image_io.h"

namespace petseg::report {

using Color = std::array<uint8_t, 3>;  // RGB
using Palette = std::vector<Color>;     // one colour per class index
// The pets': pet orange, background blue, border yellow.
const Palette& pets_palette();
// Pascal VOC's colour map for n classes (background black, aeroplane dark red, ...; what its masks are drawn in).
Palette voc_palette(int n);
// The palette of a data set layout ("oxford-pets": the pets'; any other: VOC's) with n classes.
Palette palette_for(const std::string& layout, int n);
// The class's colour; the ignore index (and anything the palette lacks) grey.
Color class_color(int64_t cls, const Palette& palette = pets_palette());
// "#rrggbb".
std::string css_color(const Color& color);

// [3,H,W] ImageNet-normalized float -> 8-bit RGB image.
image::Image denormalize(const at::Tensor& image_chw);
// RGB image with a class mask [H,W] (int64, 255 = ignore) blended on top (alpha 0.5).
image::Image overlay(const image::Image& rgb, const at::Tensor& mask_hw, float alpha = 0.5f,
                     const Palette& palette = pets_palette());
// Rows of image | ground truth overlay | prediction overlay, with a 4-pixel gap, for images [N,3,S,S],
// targets and predictions [N,S,S].
image::Image prediction_grid(const at::Tensor& images, const at::Tensor& targets, const at::Tensor& predictions,
                             const Palette& palette = pets_palette());

void write_png(const std::filesystem::path& path, const image::Image& image);

}  // namespace petseg::report
