// Class colours: the palettes masks are drawn in (data set layouts name theirs, reports and overlays use them).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace petseg::image {

using Color = std::array<uint8_t, 3>;  // RGB
using Palette = std::vector<Color>;     // one colour per class index

// The colour map of the Pascal VOC development kit (labelcolormap.m) for n classes: class i's bits spread over the
// high bits of R, G and B (background black, aeroplane dark red, ...; what VOC's masks are drawn in).
Palette voc_colormap(int n);

}  // namespace petseg::image
