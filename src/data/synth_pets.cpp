// Synthetic Oxford-IIIT Pet: the pets' style of synth's one pipeline (data/synth.cpp). Pets are unions of ellipses
// (body, head, tail) and triangles (ears) with fur texture; the trimap border is the band where a dilation and an
// erosion of the pet disagree, as in the real trimaps. The exact file layout, file formats and split files of the
// real set, its stray files, and the broken kinds of file it holds.
#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "data/oxford_pets.h"
#include "data/synth_draw.h"
#include "image/image_io.h"

namespace petseg::data {
namespace {

namespace fs = std::filesystem;
using namespace synth_draw;

// The pet: a body, a head with two ears, a tail and legs; placed so most of it is in the frame.
struct PetShape {
  std::vector<Ellipse> ellipses;
  std::vector<Triangle> triangles;
  bool contains(float x, float y) const {
    for (const auto& e : ellipses) {
      if (e.contains(x, y)) return true;
    }
    for (const auto& t : triangles) {
      if (t.contains(x, y)) return true;
    }
    return false;
  }
};

PetShape pet_shape(Rng& rng, int w, int h, const Breed& breed) {
  const float m = float(std::min(w, h));
  const float body_a = m * float(rng.uniform(0.26, 0.38)), body_b = body_a * float(rng.uniform(0.5, 0.8));
  const float cx = float(rng.uniform(0.4, 0.6)) * w, cy = float(rng.uniform(0.5, 0.68)) * h;
  const float tilt = float(rng.uniform(-0.5, 0.5));
  const int facing = rng.coin() ? 1 : -1;
  const float head_r = body_b * float(rng.uniform(0.7, 1.0));
  const float hx = cx + facing * body_a * 0.85f, hy = cy - body_b * float(rng.uniform(0.6, 1.1));
  PetShape shape;
  shape.ellipses = {
      make_ellipse(cx, cy, body_a, body_b, tilt),
      make_ellipse(hx, hy, head_r, head_r * float(rng.uniform(0.85, 1.05)), 0),
      make_ellipse(cx - facing * body_a * 1.05f, cy - body_b * 0.3f, body_a * 0.45f, body_b * 0.16f,
                   float(facing * rng.uniform(0.3, 0.9))),
      make_ellipse(cx - body_a * 0.5f, cy + body_b * 0.8f, body_b * 0.22f, body_b * 0.45f, 0),  // legs
      make_ellipse(cx + body_a * 0.5f, cy + body_b * 0.8f, body_b * 0.22f, body_b * 0.45f, 0),
  };
  const float ear = head_r * float(breed.species == 1 ? rng.uniform(0.6, 0.9) : rng.uniform(0.4, 0.7));
  for (int side : {-1, 1}) {
    const float bx = hx + side * head_r * 0.55f, by = hy - head_r * 0.55f;
    shape.triangles.push_back(
        {{bx - ear * 0.45f, bx + ear * 0.45f, bx + side * ear * 0.3f}, {by + ear * 0.2f, by + ear * 0.2f, by - ear}});
  }
  return shape;
}

// Fur and background textures: the fur hue depends on the breed so classes look alike; the background on the
// sample. `inside` marks the pet's pixels.
void paint(Rng& rng, const Breed& breed, const std::vector<uint8_t>& inside, image::Image& rgb) {
  const int w = rgb.width, h = rgb.height;
  const float m = float(std::min(w, h));
  Rng breed_rng(splitmix64(uint64_t(breed.class_id) * 7919));
  const Rgb fur0 = random_color(breed_rng, 40, 230), fur1 = random_color(breed_rng, 20, 200);
  const Rgb fur_jitter = random_color(rng, -25, 25);
  const Rgb bg0 = random_color(rng, 30, 220), bg1 = random_color(rng, 30, 220);
  const ValueNoise fur_noise(rng.next(), m * float(rng.uniform(0.02, 0.05)));
  const ValueNoise bg_noise(rng.next(), m * float(rng.uniform(0.08, 0.3)));
  const ValueNoise grain(rng.next(), 1.5f);
  const float stripe_f = float(rng.uniform(0.1, 0.35)), stripe_a = breed.class_id % 3 == 0 ? 0.6f : 0.25f;
  const float bg_fx = float(rng.uniform(0.01, 0.08)), bg_fy = float(rng.uniform(0.01, 0.08));
  const float light_x = float(rng.uniform(-0.3, 0.3)), light_y = float(rng.uniform(-0.3, 0.3));
  for (int y = 0; y < h; ++y) {
    uint8_t* out = rgb.row(y);
    for (int x = 0; x < w; ++x) {
      float t, r, g, b;
      if (inside[size_t(y) * w + x]) {
        t = 0.55f * fur_noise(float(x), float(y)) + stripe_a * (0.5f + 0.5f * std::sin(stripe_f * (x + 0.6f * y)));
        t = std::min(1.0f, t);
        r = fur0.r + (fur1.r - fur0.r) * t + fur_jitter.r;
        g = fur0.g + (fur1.g - fur0.g) * t + fur_jitter.g;
        b = fur0.b + (fur1.b - fur0.b) * t + fur_jitter.b;
      } else {
        t = 0.7f * bg_noise(float(x), float(y)) + 0.3f * (0.5f + 0.5f * std::sin(bg_fx * x + bg_fy * y));
        r = bg0.r + (bg1.r - bg0.r) * t;
        g = bg0.g + (bg1.g - bg0.g) * t;
        b = bg0.b + (bg1.b - bg0.b) * t;
      }
      const float shade = 1.0f + light_x * (float(x) / w - 0.5f) + light_y * (float(y) / h - 0.5f);
      const float n = 24.0f * (grain(float(x), float(y)) - 0.5f);
      out[3 * x] = uint8_t(std::clamp(r * shade + n, 0.0f, 255.0f));
      out[3 * x + 1] = uint8_t(std::clamp(g * shade + n, 0.0f, 255.0f));
      out[3 * x + 2] = uint8_t(std::clamp(b * shade + n, 0.0f, 255.0f));
    }
  }
}

// The trimap: pet (1) inside, background (2) outside, border (3) where a small box around the pixel holds both.
void draw_trimap(const std::vector<uint8_t>& inside, image::Image& trimap) {
  const int w = trimap.width, h = trimap.height;
  const int r = std::max(1, int(std::lround(float(std::min(w, h)) / 120.0f)));
  const auto counts = box_counts(inside, w, h, r);
  for (int y = 0; y < h; ++y) {
    const int y0 = std::max(0, y - r), y1 = std::min(h, y + r + 1);
    for (int x = 0; x < w; ++x) {
      const int x0 = std::max(0, x - r), x1 = std::min(w, x + r + 1);
      const int full = (y1 - y0) * (x1 - x0), c = counts[size_t(y) * w + x];
      trimap.pixels[size_t(y) * w + x] = (c > 0 && c < full) ? 3 : (c == full ? 1 : 2);
    }
  }
}

SynthScene render_scene(int w, int h, uint64_t seed, const Breed& breed) {
  Rng rng(seed);
  const PetShape shape = pet_shape(rng, w, h, breed);
  std::vector<uint8_t> inside(size_t(w) * h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) inside[size_t(y) * w + x] = shape.contains(x + 0.5f, y + 0.5f);
  }
  SynthScene s{image::Image(w, h, 3), image::Image(w, h, 1)};
  paint(rng, breed, inside, s.rgb);
  draw_trimap(inside, s.mask);
  return s;
}

const Breed& breed_of(const SynthSample& s) { return oxford_breeds()[size_t(s.subject)]; }

// Stray files the real archives hold: MATLAB files among the images, macOS AppleDouble files among trimaps.
void write_pet_strays(const fs::path& root, const std::vector<SynthSample>& plans, SynthReport& report) {
  const std::string mat_header = "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jun 28 2012";
  for (const char* name : {"Abyssinian_100", "Abyssinian_101"}) {
    std::vector<uint8_t> mat(mat_header.begin(), mat_header.end());
    mat.resize(256, ' ');
    write_bytes(root / "images" / (std::string(name) + ".mat"), mat);
    report.junk.push_back({std::string("images/") + name + ".mat", "", "stray:matlab_file"});
  }
  const std::vector<uint8_t> appledouble = {0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00, 'M', 'a', 'c', ' ',
                                            'O',  'S',  ' ',  'X',  ' ',  ' ',  ' ',  ' ',  ' ', ' ', ' ', ' '};
  for (size_t i = 0; i < 2 && i < plans.size(); ++i) {
    const std::string file = "._" + plans[i].name + ".png";
    write_bytes(root / "annotations" / "trimaps" / file, appledouble);
    report.junk.push_back({"annotations/trimaps/" + file, "", "stray:appledouble"});
  }
}

// Split files, as in annotations.tar.gz: list.txt with its header, trainval.txt and test.txt without.
void write_split_files(const fs::path& root, const std::vector<SynthSample>& plans) {
  std::vector<const SynthSample*> listed;
  for (const auto& p : plans) {
    if (p.split >= 0) listed.push_back(&p);
  }
  std::sort(listed.begin(), listed.end(), [](const SynthSample* a, const SynthSample* b) {
    if (breed_of(*a).class_id != breed_of(*b).class_id) return breed_of(*a).class_id < breed_of(*b).class_id;
    return a->name < b->name;
  });
  std::string list =
      "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n#SPECIES: 1:Cat 2:Dog\n#BREED ID: 1-25:Cat "
      "1:12:Dog\n#All images with 1st letter as captial are cat images\n#images with small first letter are dog "
      "images\n";
  std::string split_text[2];
  for (const SynthSample* p : listed) {
    const Breed& b = breed_of(*p);
    const std::string line = p->name + " " + std::to_string(b.class_id) + " " + std::to_string(b.species) + " " +
                             std::to_string(b.breed_id) + "\n";
    list += line;
    split_text[p->split] += line;
  }
  write_file_atomic(root / "annotations" / "list.txt", list);
  write_file_atomic(root / "annotations" / "trainval.txt", split_text[0]);
  write_file_atomic(root / "annotations" / "test.txt", split_text[1]);
}

class PetsStyle : public SynthStyle {
 public:
  // The samples of the splits (by breed, alternating trainval/test), and about 1% in no split, as in the real set.
  std::vector<SynthSample> samples(const SynthOptions& o) const override {
    const int nbreeds = int(oxford_breeds().size());
    std::vector<SynthSample> out;
    for (int i = 0; i < o.count; ++i) {
      const Breed& b = oxford_breeds()[size_t(i % nbreeds)];
      out.push_back(sample(std::string(b.name) + "_" + std::to_string(i / nbreeds + 1), i % nbreeds, i % 2));
    }
    const int unlisted = o.count >= 20 ? std::max(1, o.count / 100) : 0;
    for (int i = 0; i < unlisted; ++i) {
      const int b = (i * 7) % nbreeds;
      out.push_back(sample(std::string(oxford_breeds()[size_t(b)].name) + "_" + std::to_string(900 + i), b, -1));
    }
    return out;
  }
  std::vector<Junk> junk_kinds(const SynthOptions&) const override {
    return {Junk::kPngNamedJpg, Junk::kGrayscale,     Junk::kPalette,       Junk::kRgba,
            Junk::kTruncatedImage, Junk::kEmptyImage, Junk::kNoMask,        Junk::kMaskWrongSize,
            Junk::kMaskBadValue, Junk::kMissingImage};
  }
  SynthSample junk_sample(int k, Junk junk, const SynthOptions&) const override {
    const int b = (k * 5 + 3) % int(oxford_breeds().size());
    SynthSample s = sample(std::string(oxford_breeds()[size_t(b)].name) + "_" + std::to_string(1000 + k), b, k % 2);
    s.junk = junk;
    return s;
  }
  bool has_split_files(const SynthOptions&) const override { return true; }
  SynthScene render(int w, int h, uint64_t seed, const SynthSample& s) const override {
    return render_scene(w, h, seed, breed_of(s));
  }
  std::string image_path(const SynthSample& s) const override { return "images/" + s.name + ".jpg"; }
  std::string mask_path(const SynthSample& s) const override { return "annotations/trimaps/" + s.name + ".png"; }
  std::vector<uint8_t> encode_mask(const image::Image& mask, const SynthSample&, const SynthOptions&) const override {
    return image::encode_png(mask);
  }
  uint8_t bad_mask_value() const override { return 7; }  // trimaps hold 1, 2 and 3
  std::string expectation(Junk junk, const SynthOptions&) const override {
    return common_expectation(junk, "trimap");
  }
  void create_folders(const fs::path& root) const override {
    fs::create_directories(root / "images");
    fs::create_directories(root / "annotations" / "trimaps");
  }
  void write_strays(const fs::path& root, const std::vector<SynthSample>& samples, const SynthOptions&,
                    SynthReport& report) const override {
    write_pet_strays(root, samples, report);
  }
  void write_index_files(const fs::path& root, const std::vector<SynthSample>& samples,
                         const SynthOptions&) const override {
    write_split_files(root, samples);
  }

 private:
  static SynthSample sample(std::string name, int breed, int split) {
    SynthSample s;
    s.name = std::move(name);
    s.subject = breed;
    s.split = split;
    return s;
  }
};

}  // namespace

const std::vector<Breed>& oxford_breeds() {
  static const std::vector<Breed> breeds = {
      {"Abyssinian", 1, 1, 1},
      {"american_bulldog", 2, 2, 1},
      {"american_pit_bull_terrier", 3, 2, 2},
      {"basset_hound", 4, 2, 3},
      {"beagle", 5, 2, 4},
      {"Bengal", 6, 1, 2},
      {"Birman", 7, 1, 3},
      {"Bombay", 8, 1, 4},
      {"boxer", 9, 2, 5},
      {"British_Shorthair", 10, 1, 5},
      {"chihuahua", 11, 2, 6},
      {"Egyptian_Mau", 12, 1, 6},
      {"english_cocker_spaniel", 13, 2, 7},
      {"english_setter", 14, 2, 8},
      {"german_shorthaired", 15, 2, 9},
      {"great_pyrenees", 16, 2, 10},
      {"havanese", 17, 2, 11},
      {"japanese_chin", 18, 2, 12},
      {"keeshond", 19, 2, 13},
      {"leonberger", 20, 2, 14},
      {"Maine_Coon", 21, 1, 7},
      {"miniature_pinscher", 22, 2, 15},
      {"newfoundland", 23, 2, 16},
      {"Persian", 24, 1, 8},
      {"pomeranian", 25, 2, 17},
      {"pug", 26, 2, 18},
      {"Ragdoll", 27, 1, 9},
      {"Russian_Blue", 28, 1, 10},
      {"saint_bernard", 29, 2, 19},
      {"samoyed", 30, 2, 20},
      {"scottish_terrier", 31, 2, 21},
      {"shiba_inu", 32, 2, 22},
      {"Siamese", 33, 1, 11},
      {"Sphynx", 34, 1, 12},
      {"staffordshire_bull_terrier", 35, 2, 23},
      {"wheaten_terrier", 36, 2, 24},
      {"yorkshire_terrier", 37, 2, 25},
  };
  return breeds;
}

const SynthStyle& pets_synth_style() {
  static const PetsStyle style;
  return style;
}

}  // namespace petseg::data
