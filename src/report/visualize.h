// What the model sees and says, as pictures: overlays of class masks on images (fixed palette) and a grid of
// validation samples, image | ground truth | prediction, written as PNG with libpng.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>

#include "image/image_io.h"

namespace petseg::report {

// The fixed class palette (RGB): pet orange, background blue, border yellow; ignore grey.
const uint8_t* class_color(int64_t cls);

// [3,H,W] ImageNet-normalized float -> 8-bit RGB image.
image::Image denormalize(const at::Tensor& image_chw);
// RGB image with a class mask [H,W] (int64, 255 = ignore) blended on top (alpha 0.5).
image::Image overlay(const image::Image& rgb, const at::Tensor& mask_hw, float alpha = 0.5f);
// Rows of image | ground truth overlay | prediction overlay, with a 4-pixel gap, for images [N,3,S,S],
// targets and predictions [N,S,S].
image::Image prediction_grid(const at::Tensor& images, const at::Tensor& targets, const at::Tensor& predictions);

void write_png(const std::filesystem::path& path, const image::Image& image);

}  // namespace petseg::report
