// Synthetic Pascal VOC and plain-folders sets, their style of synth's one pipeline (data/synth.cpp): textured objects
// of a few classes on a textured background, their class masks with an ignore band (255) along object edges as VOC
// draws it, the split and class files, and the broken files each layout meets. A folders set with RGB masks holds the
// scenes of the class-index one.
#include <array>
#include <cstdio>

#include "core/check.h"
#include "core/parallel.h"
#include "data/synth_draw.h"
#include "data/voc.h"
#include "image/image_io.h"

namespace petseg::data {
namespace {

namespace fs = std::filesystem;
using namespace synth_draw;

// Where a layout puts its files and which classes it draws.
struct Style {
  bool voc;
  std::string images, masks;
  std::vector<int> classes;
  int num_classes;
};


// The RGB masks' colours, by class; the ignore band is white; a value with no colour (planted junk) gets kUnknown.
constexpr std::array<std::array<uint8_t, 3>, 5> kFolderColors = {
    {{0, 0, 0}, {220, 20, 60}, {0, 128, 255}, {255, 200, 0}, {60, 180, 75}}};
constexpr std::array<uint8_t, 3> kIgnoreColor = {255, 255, 255};
constexpr std::array<uint8_t, 3> kUnknownColor = {1, 2, 3};

void paint_classes(Rng& rng, const image::Image& labels, image::Image& rgb) {
  const int w = rgb.width, h = rgb.height;
  const float m = float(std::min(w, h));
  std::array<std::array<Rgb, 2>, 256> colors;
  colors[0] = {random_color(rng, 30, 220), random_color(rng, 30, 220)};
  for (int c = 1; c < 256; ++c) {  // a class looks alike in every image
    Rng class_rng(splitmix64(uint64_t(c) * 7919 + 101));
    colors[size_t(c)] = {random_color(class_rng, 40, 230), random_color(class_rng, 20, 200)};
  }
  const ValueNoise texture(rng.next(), m * float(rng.uniform(0.03, 0.06)));
  const ValueNoise background(rng.next(), m * float(rng.uniform(0.1, 0.3)));
  const ValueNoise grain(rng.next(), 1.5f);
  for (int y = 0; y < h; ++y) {
    uint8_t* out = rgb.row(y);
    for (int x = 0; x < w; ++x) {
      const uint8_t l = labels.row(y)[x];
      const float t = (l == 0 ? background : texture)(float(x), float(y));
      const Rgb& a = colors[l][0];
      const Rgb& b = colors[l][1];
      const float n = 24.0f * (grain(float(x), float(y)) - 0.5f);
      out[3 * x] = uint8_t(std::clamp(a.r + (b.r - a.r) * t + n, 0.0f, 255.0f));
      out[3 * x + 1] = uint8_t(std::clamp(a.g + (b.g - a.g) * t + n, 0.0f, 255.0f));
      out[3 * x + 2] = uint8_t(std::clamp(a.b + (b.b - a.b) * t + n, 0.0f, 255.0f));
    }
  }
}

// The ignore band: both sides of every edge between two labels, widened on larger images.
void draw_ignore_band(image::Image& labels) {
  const int w = labels.width, h = labels.height;
  std::vector<uint8_t> edge(size_t(w) * h, 0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      if (x + 1 < w && labels.pixels[i] != labels.pixels[i + 1]) edge[i] = edge[i + 1] = 1;
      if (y + 1 < h && labels.pixels[i] != labels.pixels[i + size_t(w)]) edge[i] = edge[i + size_t(w)] = 1;
    }
  }
  const auto counts = box_counts(edge, w, h, std::min(w, h) / 120);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) labels.pixels[i] = 255;
  }
}

// One to three objects (an ellipse with a triangle on top); the one of `first_class` is drawn last, so it shows.
SynthScene render_class_scene(int w, int h, uint64_t seed, const Style& style, int first_class) {
  Rng rng(seed);
  SynthScene s{image::Image(w, h, 3), image::Image(w, h, 1)};
  const float m = float(std::min(w, h));
  const int objects = int(rng.randint(1, 3));
  for (int k = objects - 1; k >= 0; --k) {
    const int c = k == 0 ? first_class : style.classes[size_t(rng.randint(0, int64_t(style.classes.size()) - 1))];
    const float a = m * float(rng.uniform(0.14, 0.28)), b = a * float(rng.uniform(0.55, 1.0));
    const Ellipse e = make_ellipse(float(rng.uniform(0.25, 0.75)) * w, float(rng.uniform(0.3, 0.75)) * h, a, b,
                                   float(rng.uniform(0.0, 3.14159)));
    const Triangle t = {{e.cx - a * 0.3f, e.cx + a * 0.3f, e.cx}, {e.cy - b * 0.6f, e.cy - b * 0.6f, e.cy - b * 1.4f}};
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const float px = x + 0.5f, py = y + 0.5f;
        if (e.contains(px, py) || t.contains(px, py)) s.mask.row(y)[x] = uint8_t(c);
      }
    }
  }
  paint_classes(rng, s.mask, s.rgb);
  draw_ignore_band(s.mask);
  return s;
}

std::vector<uint8_t> encode_class_mask(const image::Image& labels, const SynthSample& plan, const Style& style,
                                 const SynthOptions& o) {
  if (!style.voc && o.rgb_masks) {
    image::Image rgb(labels.width, labels.height, 3);
    for (size_t i = 0; i < labels.pixels.size(); ++i) {
      const uint8_t l = labels.pixels[i];
      const auto& c = l == 255 ? kIgnoreColor : l < kFolderColors.size() ? kFolderColors[l] : kUnknownColor;
      std::copy(c.begin(), c.end(), &rgb.pixels[i * 3]);
    }
    return image::encode_png(rgb);
  }
  image::PngOptions png;
  if (style.voc || plan.palette_mask) png.palette_rgb = voc_palette();
  return image::encode_png(labels, png);
}

std::string sample_name(const Style& style, int number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), style.voc ? "2008_%06d" : "img_%05d", number);
  return buf;
}

SynthSample class_sample(std::string name, std::string ext, int split, int first_class, bool palette) {
  SynthSample s;
  s.name = std::move(name);
  s.image_ext = std::move(ext);
  s.split = split;
  s.subject = first_class;
  s.palette_mask = palette;
  return s;
}

// Stray files, and VOC's detection-only images (in JPEGImages with no mask and no split: not samples at all).
void write_class_strays(const fs::path& root, const Style& style, const std::vector<SynthSample>& plans,
                        const SynthOptions& o, SynthReport& report) {
  auto plant = [&](const std::string& rel, const std::vector<uint8_t>& bytes, const std::string& expect) {
    write_bytes(root / rel, bytes);
    report.junk.push_back({rel, "", expect});
  };
  const std::vector<uint8_t> appledouble = {0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00, 'M', 'a', 'c', ' '};
  const std::string text = "notes\n";
  plant(style.masks + "/._" + plans[0].name + ".png", appledouble, "stray:appledouble");
  plant(style.masks + "/readme.txt", {text.begin(), text.end()}, "stray:not_a_mask");
  Rng rng(mix_seed(o.seed, 0xD7EC7ULL));
  const SynthScene scene = render_class_scene(o.min_side, o.min_side, rng.next(), style, style.classes[0]);
  if (style.voc) {
    for (int i = 0; i < 2; ++i) {
      plant(style.images + "/" + sample_name(style, 910000 + i) + ".jpg", image::encode_jpeg(scene.rgb, 90),
            "ignored:detection_only");
    }
    return;
  }
  plant("images/notes.txt", {text.begin(), text.end()}, "stray:not_an_image");
  plant("images/" + plans[1 % plans.size()].name + ".png", image::encode_png(scene.rgb), "stray:duplicate_stem");
  plant("masks/orphan_00001.png", encode_class_mask(scene.mask, plans[0], style, o), "stray:orphan_mask");
}

std::string lines_of(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

// Split files (VOC's ImageSets/Segmentation, a folders set's train.txt/val.txt), classes.txt, the class colours.
void write_class_files(const fs::path& root, const Style& style, const std::vector<SynthSample>& plans,
                       const SynthOptions& o) {
  std::vector<std::string> split[2];
  for (const auto& p : plans) {
    if (p.split >= 0) split[p.split].push_back(p.name);
  }
  for (auto& s : split) std::sort(s.begin(), s.end());
  if (style.voc) {
    const fs::path sets = root / "ImageSets" / "Segmentation";
    fs::create_directories(sets);
    std::vector<std::string> both = split[0];
    both.insert(both.end(), split[1].begin(), split[1].end());
    std::sort(both.begin(), both.end());
    write_file_atomic(sets / "train.txt", lines_of(split[0]));
    write_file_atomic(sets / "val.txt", lines_of(split[1]));
    write_file_atomic(sets / "trainval.txt", lines_of(both));
    return;
  }
  if (o.split_files) {
    write_file_atomic(root / "train.txt", lines_of(split[0]));
    write_file_atomic(root / "val.txt", lines_of(split[1]));
  }
  if (o.classes_file) write_file_atomic(root / "classes.txt", lines_of(synth_folder_classes()));
  if (o.rgb_masks) {
    std::vector<std::string> colors;
    for (size_t c = 0; c < kFolderColors.size(); ++c) {
      const auto& rgb = kFolderColors[c];
      const std::string& name = synth_folder_classes()[c];
      colors.push_back(detail::str_cat(int(rgb[0]), ",", int(rgb[1]), ",", int(rgb[2]), " ", name));
    }
    colors.push_back("255,255,255 ignore");
    write_file_atomic(root / kSynthClassColorsFile, "# R,G,B name: the colours of masks/*.png\n" + lines_of(colors));
  }
}

// VOC's or a folders set's style.
class ClassStyle : public SynthStyle {
 public:
  explicit ClassStyle(Style style) : s_(std::move(style)) {}
  std::vector<SynthSample> samples(const SynthOptions& o) const override {
    const bool split_files = has_split_files(o);
    std::vector<SynthSample> out;
    for (int i = 0; i < o.count; ++i) {
      const int split = !split_files ? 0 : s_.voc ? i % 2 : (i % 4 == 3 ? 1 : 0);
      const std::string ext = s_.voc ? ".jpg" : i % 5 == 3 ? ".png" : i % 7 == 5 ? ".jpeg" : ".jpg";
      out.push_back(class_sample(sample_name(s_, i + 1), ext, split, s_.classes[size_t(i) % s_.classes.size()],
                                 !s_.voc && i % 3 == 2));
    }
    // As in the pets, about 1% of the samples are in no split file.
    const int unlisted = split_files && o.count >= 20 ? std::max(1, o.count / 100) : 0;
    for (int i = 0; i < unlisted; ++i) {
      out.push_back(
          class_sample(sample_name(s_, 800000 + i), ".jpg", -1, s_.classes[size_t(i) % s_.classes.size()], false));
    }
    return out;
  }
  // A value beyond the classes needs classes that are named; a missing image, a split file that names it.
  std::vector<Junk> junk_kinds(const SynthOptions& o) const override {
    std::vector<Junk> kinds = {Junk::kPngNamedJpg,   Junk::kUnreadableImage, Junk::kNoMask,
                               Junk::kMaskWrongSize, Junk::kUnreadableMask,  Junk::kEmptyMask};
    if (s_.voc || o.classes_file || o.rgb_masks) kinds.push_back(Junk::kMaskBadValue);
    if (has_split_files(o)) kinds.push_back(Junk::kMissingImage);
    return kinds;
  }
  SynthSample junk_sample(int k, Junk junk, const SynthOptions& o) const override {
    SynthSample p = class_sample(sample_name(s_, 900000 + k), ".jpg", has_split_files(o) ? k % 2 : 0,
                                 s_.classes[size_t(k) % s_.classes.size()], false);
    p.junk = junk;
    return p;
  }
  bool has_split_files(const SynthOptions& o) const override { return s_.voc || o.split_files; }
  SynthScene render(int w, int h, uint64_t seed, const SynthSample& sample) const override {
    return render_class_scene(w, h, seed, s_, sample.subject);
  }
  std::string image_path(const SynthSample& p) const override { return s_.images + "/" + p.name + p.image_ext; }
  std::string mask_path(const SynthSample& p) const override { return s_.masks + "/" + p.name + ".png"; }
  std::vector<uint8_t> encode_mask(const image::Image& mask, const SynthSample& p,
                                   const SynthOptions& o) const override {
    return encode_class_mask(mask, p, s_, o);
  }
  uint8_t bad_mask_value() const override { return uint8_t(s_.num_classes + 9); }
  std::string expectation(Junk junk, const SynthOptions& o) const override {
    if (junk == Junk::kMaskBadValue && o.rgb_masks) return "rejected:mask_unknown_color";
    return common_expectation(junk, "mask");
  }
  void create_folders(const fs::path& root) const override {
    fs::create_directories(root / s_.images);
    fs::create_directories(root / s_.masks);
  }
  void write_strays(const fs::path& root, const std::vector<SynthSample>& samples, const SynthOptions& o,
                    SynthReport& report) const override {
    write_class_strays(root, s_, samples, o, report);
  }
  void write_index_files(const fs::path& root, const std::vector<SynthSample>& samples,
                         const SynthOptions& o) const override {
    write_class_files(root, s_, samples, o);
  }

 private:
  Style s_;
};

}  // namespace

const std::vector<std::string>& synth_folder_classes() {
  static const std::vector<std::string> names = {"background", "cat", "dog", "bird", "car"};
  return names;
}

const SynthStyle& class_synth_style(const std::string& layout) {
  static const ClassStyle voc({true, "JPEGImages", "SegmentationClass", {3, 7, 8, 12, 15}, 21});  // bird car cat dog person
  static const ClassStyle folders({false, "images", "masks", {1, 2, 3, 4}, int(synth_folder_classes().size())});
  return layout == "voc" ? voc : folders;
}

}  // namespace petseg::data
