// The Pascal VOC layout's reader, as torchvision's VOCSegmentation reads it: DIR/JPEGImages/<id>.jpg,
// DIR/SegmentationClass/<id>.png (palette PNGs whose palette index is the class, 255 the ignore border around
// objects), DIR/ImageSets/Segmentation/{train,val}.txt (one id per line). JPEGImages also holds the detection-only
// images, with no mask and in no segmentation split: they are not samples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace petseg::data {

class Layout;

// background, aeroplane, ..., tvmonitor: the 21 classes, in class-id order.
const std::vector<std::string>& voc_class_names();
// VOC's palette: 256 RGB triplets (768 bytes), the colours its masks are drawn in.
std::vector<uint8_t> voc_palette();

const Layout& voc_layout();

}  // namespace petseg::data
