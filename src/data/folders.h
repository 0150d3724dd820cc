// The plain-folders layout's reader (the user's own images and masks): DIR/images/<stem>.{jpg,jpeg,png} and
// DIR/masks/<stem>.png holding class indices (gray or palette; 255 = ignore) or, with a class-colours file
// (--class-colors), RGB colours. Optional: DIR/classes.txt (one class name per line; else the masks are counted
// and the classes named class_0..), DIR/train.txt and DIR/val.txt (stems, one per line; else a seeded
// --val-fraction of the images is the validation split).
#pragma once

#include <string>
#include <vector>

namespace petseg::data {

class Layout;

inline const std::vector<std::string> kFolderImageExtensions = {".jpg", ".jpeg", ".png"};  // in order of preference

const Layout& folders_layout();

}  // namespace petseg::data
