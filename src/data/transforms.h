// Joint image+mask transforms, fused: random scale, pad, flip, crop, ImageNet normalization and mask->class
// mapping happen in one pass that writes straight into the batch buffers, computing only the pixels the crop
// keeps. Semantics follow torchvision's references/segmentation transforms (RandomResize, RandomHorizontalFlip,
// RandomCrop with pad_if_smaller, Normalize); resampling follows PIL (antialiased bilinear, nearest for masks).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/choices.h"
#include "core/labels.h"
#include "image/image_io.h"

namespace petseg::data {

// Trimap 1 -> pet (0), 2 -> background (1), 3 -> border (2, or the ignore index with kIgnore).
enum class BorderMode { kClass, kIgnore };
inline const Choices kBorderChoices = {"3class", "ignore"};  // --border
BorderMode parse_border_mode(const std::string& name);  // "3class" | "ignore"
const char* border_mode_name(BorderMode mode);
int num_classes(BorderMode mode);
const char* class_name(int index);  // "pet", "background", "border"

// From a mask's stored values (a trimap's 1/2/3, a class index) to the class indices the loader writes.
using MaskLut = std::array<uint8_t, 256>;
MaskLut trimap_lut(BorderMode border);

// Returns the first trimap value outside {1, 2, 3}, or -1 when all are valid.
int find_invalid_trimap_value(const image::Image& trimap);

// Where the output crop sits in the resized (and flipped) image.
struct Geometry {
  int resized_width = 0;
  int resized_height = 0;
  int crop_x = 0;
  int crop_y = 0;
  bool flip = false;
  int out_size = 0;
};

struct AugmentOptions {
  double min_scale = 0.5;
  double max_scale = 2.0;
  double flip_probability = 0.5;
};

// Training: shorter side resized to randint(min_scale*S, max_scale*S), padded to at least S, random S x S crop,
// horizontal flip; all draws from `sample_seed`.
Geometry train_geometry(int width, int height, int out_size, uint64_t sample_seed, const AugmentOptions& options = {});
// Evaluation: resize to S x S.
Geometry eval_geometry(int out_size);

// Writes the transformed sample: `image_chw` gets [3,S,S] floats normalized with ImageNet mean/std, `mask` gets
// [S,S] class indices (padding = kIgnoreIndex). `rgb` may be a DCT-scaled decode of the original; `trimap` must
// be at the original size. Invalid trimap values must have been rejected before.
void render_sample(const image::Image& rgb, const image::Image& trimap, const Geometry& geometry, BorderMode border,
                   float* image_chw, int64_t* mask);
// The same for any mask: `stored` (1 channel, original size) goes through `lut` (data/masks.h makes one per encoding).
void render_sample(const image::Image& rgb, const image::Image& stored, const Geometry& geometry, const MaskLut& lut,
                   float* image_chw, int64_t* mask);
// The image half of it, for images without a trimap (predict feeds the model exactly what evaluation does).
void render_image(const image::Image& rgb, const Geometry& geometry, float* image_chw);

// The whole image resized to width x height (PIL's antialiased bilinear; the same size copies it), ImageNet-normalized
// into [3,height,width]: inference at sizes other than the square (torchvision's evaluation preset, the image's own).
void render_image_resized(const image::Image& rgb, int width, int height, float* image_chw);
// The mask resized to width x height with PIL's nearest (torch's nearest-exact) and mapped through `lut` into
// [height,width] class indices. `stored` has 1 channel.
void render_mask_resized(const image::Image& stored, int width, int height, const MaskLut& lut, int64_t* mask);

// The minimum decode size worth asking TurboJPEG for: the resized size the geometry needs.
inline int decode_min_width(const Geometry& g) { return g.resized_width; }
inline int decode_min_height(const Geometry& g) { return g.resized_height; }

// Whole-image resampling with the same kernels (used for overlays, predictions and tests).
image::Image resize_bilinear(const image::Image& src, int width, int height);
image::Image resize_nearest(const image::Image& src, int width, int height);

}  // namespace petseg::data
