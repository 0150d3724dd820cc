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
#include "image/palette.h"

namespace petseg::report {

using image::Color;
using image::Palette;  // a data set's colours come from its layout (data::Layout::palette)
// The class's colour; the ignore index (and anything the palette lacks) grey.
Color class_color(int64_t cls, const Palette& palette);
// "#rrggbb".
std::string css_color(const Color& color);

// [3,H,W] ImageNet-normalized float -> 8-bit RGB image.
image::Image denormalize(const at::Tensor& image_chw);
// RGB image with a class mask [H,W] (int64, 255 = ignore) blended on top (alpha 0.5).
image::Image overlay(const image::Image& rgb, const at::Tensor& mask_hw, float alpha, const Palette& palette);
// Rows of image | ground truth overlay | prediction overlay, with a 4-pixel gap, for images [N,3,S,S],
// targets and predictions [N,S,S].
image::Image prediction_grid(const at::Tensor& images, const at::Tensor& targets, const at::Tensor& predictions,
                             const Palette& palette);

void write_png(const std::filesystem::path& path, const image::Image& image);

}  // namespace petseg::report
