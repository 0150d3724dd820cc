// VOC's colour map.
#include "image/palette.h"

namespace petseg::image {

Palette voc_colormap(int n) {
  Palette palette;
  for (int i = 0; i < n; ++i) {
    Color c = {0, 0, 0};
    int id = i;
    for (int shift = 7; shift >= 0 && id; --shift, id >>= 3) {
      for (int k = 0; k < 3; ++k) c[k] = uint8_t(c[k] | (((id >> k) & 1) << shift));
    }
    palette.push_back(c);
  }
  return palette;
}

}  // namespace petseg::image
