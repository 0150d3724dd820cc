// Parsing --class-weights and median-frequency balancing.
#include "train/class_weights.h"

#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/check.h"

namespace petseg::train {
namespace {

// One item of the list, the whole of it a finite number (strtod alone accepts "1x", "nan" and "inf").
double parse_weight(const std::string& item, const std::string& value) {
  const char* begin = item.c_str();
  char* end = nullptr;
  errno = 0;
  const double w = std::strtod(begin, &end);
  PETSEG_CHECK(!item.empty() && end != begin && *end == '\0' && errno == 0 && std::isfinite(w), "--class-weights \"",
               value, "\": \"", item, "\" is not a number (expected none, auto, or one weight per class: 1,2.5,0.8)");
  return w;
}

}  // namespace

ClassWeightsOption parse_class_weights(const std::string& value, int num_classes) {
  ClassWeightsOption o;
  if (value == "none") return o;
  if (value == "auto") {
    o.kind = ClassWeightsOption::Kind::kAuto;
    return o;
  }
  o.kind = ClassWeightsOption::Kind::kExplicit;
  size_t start = 0;
  while (true) {
    const size_t comma = value.find(',', start);
    o.weights.push_back(parse_weight(value.substr(start, comma - start), value));
    PETSEG_CHECK(o.weights.back() >= 0, "--class-weights \"", value, "\": weight ", o.weights.size(), " is negative (",
                 o.weights.back(), ")");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  PETSEG_CHECK(std::any_of(o.weights.begin(), o.weights.end(), [](double w) { return w > 0; }), "--class-weights \"",
               value, "\": every weight is 0 (the loss would be 0/0)");
  PETSEG_CHECK(num_classes <= 0 || int(o.weights.size()) == num_classes, "--class-weights \"", value, "\" gives ",
               o.weights.size(), " weights; the data set has ", num_classes, " classes");
  return o;
}

std::vector<double> median_frequency_weights(const std::vector<int64_t>& class_pixels,
                                             const std::vector<int64_t>& image_pixels) {
  PETSEG_CHECK(class_pixels.size() == image_pixels.size(), "class weights: ", class_pixels.size(), " class counts but ",
               image_pixels.size(), " image counts");
  std::vector<double> freq(class_pixels.size(), 0.0), present;
  for (size_t c = 0; c < class_pixels.size(); ++c) {
    PETSEG_CHECK(class_pixels[c] >= 0 && image_pixels[c] >= class_pixels[c], "class weights: class ", c, " has ",
                 class_pixels[c], " pixels in images of ", image_pixels[c], " pixels");
    if (class_pixels[c] == 0) continue;
    freq[c] = double(class_pixels[c]) / double(image_pixels[c]);
    present.push_back(freq[c]);
  }
  std::vector<double> weights(class_pixels.size(), 0.0);
  if (present.empty()) return weights;
  std::sort(present.begin(), present.end());
  const size_t mid = present.size() / 2;
  const double median = present.size() % 2 ? present[mid] : (present[mid - 1] + present[mid]) / 2;
  for (size_t c = 0; c < weights.size(); ++c) {
    if (freq[c] > 0) weights[c] = median / freq[c];
  }
  return weights;
}

at::Tensor class_weights_tensor(const std::vector<double>& weights, at::Device device) {
  return at::tensor(weights, at::kDouble).to(device, at::kFloat);
}

}  // namespace petseg::train
