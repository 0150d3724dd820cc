// Synthetic Oxford-IIIT Pet (VOC and folders: synth_layouts.cpp) and the --out checks every layout shares. Each
// sample is drawn from its own generator seeded by (seed, sample number), so the set is identical whatever the thread
// count. Pets are unions of ellipses (body, head, tail) and triangles (ears) with fur texture; the trimap border is
// the band where a dilation and an erosion of the pet disagree, as in the real trimaps.
#include "data/synth.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/choices.h"
#include "core/fs.h"
#include "core/parallel.h"
#include "core/log.h"
#include "core/random.h"
#include "image/image_io.h"
#include "data/oxford_pets.h"
#include "data/prepare.h"
#include "data/synth_draw.h"

namespace petseg::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kMarker = ".petseg-synth.json";
constexpr int kSynthVersion = 2;  // bump whenever the generated pixels change

using namespace synth_draw;

struct Scene {
  image::Image rgb;
  image::Image trimap;
};

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

Scene render_scene(int w, int h, uint64_t seed, const Breed& breed) {
  Rng rng(seed);
  const PetShape shape = pet_shape(rng, w, h, breed);
  std::vector<uint8_t> inside(size_t(w) * h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) inside[size_t(y) * w + x] = shape.contains(x + 0.5f, y + 0.5f);
  }
  Scene s{image::Image(w, h, 3), image::Image(w, h, 1)};
  paint(rng, breed, inside, s.rgb);
  draw_trimap(inside, s.trimap);
  return s;
}

enum class JunkKind {
  kNone,
  kPngNamedJpg,
  kGrayscale,
  kPalette,
  kRgba,
  kTruncated,
  kZeroBytes,
  kNoTrimap,
  kTrimapWrongSize,
  kTrimapBadValue,
  kMissingImage,
};

struct Plan {
  std::string name;
  const Breed* breed;
  int split;  // 0 trainval, 1 test, -1 none
  JunkKind junk = JunkKind::kNone;
};

image::Image to_palette(const image::Image& rgb, std::vector<uint8_t>* palette) {
  // 6x6x6 colour cube: crude, as the real palette images are.
  image::Image idx(rgb.width, rgb.height, 1);
  for (int i = 0; i < 216; ++i) {
    palette->push_back(uint8_t(51 * (i / 36)));
    palette->push_back(uint8_t(51 * (i / 6 % 6)));
    palette->push_back(uint8_t(51 * (i % 6)));
  }
  for (size_t p = 0; p < idx.pixels.size(); ++p) {
    const uint8_t* c = &rgb.pixels[p * 3];
    idx.pixels[p] = uint8_t(((c[0] + 25) / 51) * 36 + ((c[1] + 25) / 51) * 6 + (c[2] + 25) / 51);
  }
  return idx;
}

void write_sample(const fs::path& root, const Plan& plan, uint64_t seed, const SynthOptions& options) {
  if (plan.junk == JunkKind::kMissingImage) return;
  Rng rng(seed);
  const int w = int(rng.randint(options.min_side, options.max_side));
  const int h = int(rng.randint(options.min_side, options.max_side));
  Scene s = render_scene(w, h, rng.next(), *plan.breed);
  const fs::path image = image_path(root, plan.name), trimap = trimap_path(root, plan.name);
  switch (plan.junk) {
    case JunkKind::kPngNamedJpg:
      write_bytes(image, image::encode_png(s.rgb));
      break;
    case JunkKind::kGrayscale: {
      image::Image gray(w, h, 1);
      for (size_t p = 0; p < gray.pixels.size(); ++p) {
        const uint8_t* c = &s.rgb.pixels[p * 3];
        gray.pixels[p] = uint8_t((299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000);
      }
      write_bytes(image, image::encode_jpeg(gray, 90));
      break;
    }
    case JunkKind::kPalette: {
      image::PngOptions png;
      const image::Image idx = to_palette(s.rgb, &png.palette_rgb);
      write_bytes(image, image::encode_png(idx, png));
      break;
    }
    case JunkKind::kRgba: {
      image::Image rgba(w, h, 4);
      for (size_t p = 0; p < size_t(w) * h; ++p) {
        std::copy_n(&s.rgb.pixels[p * 3], 3, &rgba.pixels[p * 4]);
        rgba.pixels[p * 4 + 3] = 255;
      }
      write_bytes(image, image::encode_png(rgba));
      break;
    }
    case JunkKind::kTruncated: {
      auto bytes = image::encode_jpeg(s.rgb, 90);
      bytes.resize(bytes.size() * 3 / 5);
      write_bytes(image, bytes);
      break;
    }
    case JunkKind::kZeroBytes:
      write_bytes(image, {});
      break;
    default:
      write_bytes(image, image::encode_jpeg(s.rgb, 90));
      break;
  }
  switch (plan.junk) {
    case JunkKind::kNoTrimap:
      break;
    case JunkKind::kTrimapWrongSize:
      write_bytes(trimap, image::encode_png(image::Image(w + 7, h, 1)));
      break;
    case JunkKind::kTrimapBadValue:
      for (int y = 0; y < std::min(h, 8); ++y) std::fill_n(s.trimap.row(y), std::min(w, 8), uint8_t(7));
      write_bytes(trimap, image::encode_png(s.trimap));
      break;
    default:
      write_bytes(trimap, image::encode_png(s.trimap));
      break;
  }
}

std::string expectation(JunkKind kind) {
  switch (kind) {
    case JunkKind::kPngNamedJpg:
      return "converted:png_named_jpg";
    case JunkKind::kGrayscale:
      return "converted:grayscale->rgb";
    case JunkKind::kPalette:
      return "converted:palette->rgb";
    case JunkKind::kRgba:
      return "converted:rgba->rgb";
    case JunkKind::kTruncated:
      return "rejected:truncated_jpeg";
    case JunkKind::kZeroBytes:
      return "rejected:empty_image";
    case JunkKind::kNoTrimap:
      return "rejected:missing_trimap";
    case JunkKind::kTrimapWrongSize:
      return "rejected:trimap_size_mismatch";
    case JunkKind::kTrimapBadValue:
      return "rejected:trimap_bad_value";
    case JunkKind::kMissingImage:
      return "rejected:missing_image";
    default:
      return "";
  }
}

std::string rel_path_for(JunkKind kind, const std::string& name) {
  switch (kind) {
    case JunkKind::kNoTrimap:
    case JunkKind::kTrimapWrongSize:
    case JunkKind::kTrimapBadValue:
      return "annotations/trimaps/" + name + ".png";
    default:
      return "images/" + name + ".jpg";
  }
}

json marker_json(const SynthOptions& o) {
  json j = {{"version", kSynthVersion}, {"count", o.count},       {"seed", o.seed},
            {"junk", o.junk},           {"min_side", o.min_side}, {"max_side", o.max_side}};
  // The pets' marker stays as it was, so sets made before layouts existed are still reused.
  if (o.layout != "oxford-pets") {
    j["layout"] = o.layout;
    j["class_layout_version"] = kClassLayoutVersion;
    if (o.layout == "folders") {
      j["split_files"] = o.split_files;
      j["classes_file"] = o.classes_file;
      j["rgb_masks"] = o.rgb_masks;
    }
  }
  return j;
}

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

namespace {

// What to write: the samples of the splits (by breed, alternating trainval/test), ~1% in no split, and with
// --junk one sample of every broken kind. Reported in `report` as they are planned.
std::vector<Plan> plan_samples(const SynthOptions& options, SynthReport& report) {
  const auto& breeds = oxford_breeds();
  std::vector<Plan> plans;
  const int nbreeds = int(breeds.size());
  for (int i = 0; i < options.count; ++i) {
    const Breed& b = breeds[i % nbreeds];
    const int number = i / nbreeds + 1;
    plans.push_back({std::string(b.name) + "_" + std::to_string(number), &b, i % 2});
  }
  // About 1% of the real images are in no split; so here.
  const int unlisted = options.count >= 20 ? std::max(1, options.count / 100) : 0;
  for (int i = 0; i < unlisted; ++i) {
    const Breed& b = breeds[(i * 7) % nbreeds];
    plans.push_back({std::string(b.name) + "_" + std::to_string(900 + i), &b, -1});
  }
  if (options.junk) {
    const JunkKind kinds[] = {JunkKind::kPngNamedJpg, JunkKind::kGrayscale,       JunkKind::kPalette,
                              JunkKind::kRgba,        JunkKind::kTruncated,       JunkKind::kZeroBytes,
                              JunkKind::kNoTrimap,    JunkKind::kTrimapWrongSize, JunkKind::kTrimapBadValue,
                              JunkKind::kMissingImage};
    int k = 0;
    for (JunkKind kind : kinds) {
      const Breed& b = breeds[(k * 5 + 3) % nbreeds];
      Plan p{std::string(b.name) + "_" + std::to_string(1000 + k), &b, k % 2, kind};
      report.junk.push_back({rel_path_for(kind, p.name), p.name, expectation(kind)});
      plans.push_back(p);
      ++k;
    }
  }
  report.trainval = report.test = 0;
  for (const auto& p : plans) {
    if (p.split == 0) ++report.trainval;
    if (p.split == 1) ++report.test;
    if (p.split < 0) ++report.unlisted;
  }
  return plans;
}

// Stray files the real archives hold: MATLAB files among the images, macOS AppleDouble files among trimaps.
void write_strays(const fs::path& root, const std::vector<Plan>& plans, SynthReport& report) {
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
void write_split_files(const fs::path& root, const std::vector<Plan>& plans) {
  std::vector<const Plan*> listed;
  for (const auto& p : plans) {
    if (p.split >= 0) listed.push_back(&p);
  }
  std::sort(listed.begin(), listed.end(), [](const Plan* a, const Plan* b) {
    if (a->breed->class_id != b->breed->class_id) return a->breed->class_id < b->breed->class_id;
    return a->name < b->name;
  });
  std::string list =
      "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n#SPECIES: 1:Cat 2:Dog\n#BREED ID: 1-25:Cat "
      "1:12:Dog\n#All images with 1st letter as captial are cat images\n#images with small first letter are dog "
      "images\n";
  std::string split_text[2];
  for (const Plan* p : listed) {
    const std::string line = p->name + " " + std::to_string(p->breed->class_id) + " " +
                             std::to_string(p->breed->species) + " " + std::to_string(p->breed->breed_id) + "\n";
    list += line;
    split_text[p->split] += line;
  }
  write_file_atomic(root / "annotations" / "list.txt", list);
  write_file_atomic(root / "annotations" / "trainval.txt", split_text[0]);
  write_file_atomic(root / "annotations" / "test.txt", split_text[1]);
}

}  // namespace

namespace {

// The folder synth writes into: new, empty, or made by synth with the same options (then reused as it is).
bool check_out_folder(const SynthOptions& options) {
  const fs::path root = options.out, marker = root / kMarker;
  if (!fs::exists(root)) return false;
  PETSEG_CHECK(fs::is_directory(root), root.string(), " exists and is not a folder");
  if (fs::exists(marker)) {
    json previous;
    try {
      previous = json::parse(read_text_file(marker));
    } catch (const json::exception&) {
    }
    PETSEG_CHECK(previous == marker_json(options), root.string(), " holds a synthetic set made with other options (",
                 marker.string(), "); choose another --out or remove it");
    return true;
  }
  PETSEG_CHECK(fs::is_empty(root), root.string(),
               " is not empty and was not made by petseg synth; choose an empty or new folder for --out");
  return false;
}

void synthesize_pets(const SynthOptions& options, SynthReport& report) {
  const fs::path root = options.out;
  const std::vector<Plan> plans = plan_samples(options, report);
  report.samples = int(plans.size());
  if (report.reused) return;
  fs::create_directories(root / "images");
  fs::create_directories(root / "annotations" / "trimaps");
  parallel_for(plans.size(), options.threads,
               [&](size_t i) { write_sample(root, plans[i], mix_seed(options.seed, i), options); });
  if (options.junk) write_strays(root, plans, report);
  write_split_files(root, plans);
}

}  // namespace

SynthReport synthesize(const SynthOptions& asked) {
  SynthOptions options = asked;
  if (options.layout == kAutoLayout) options.layout = "oxford-pets";  // the set the original trained on
  if (options.layout != "folders" && (options.split_files || !options.classes_file || options.rgb_masks)) {
    log_warning("--split-files, --no-classes-file and --rgb-masks shape a folders set; the ", options.layout,
                " layout has its own files");
  }
  PETSEG_CHECK(!options.out.empty(), "--out is required");
  PETSEG_CHECK(options.count >= 1 && options.count <= 100000, "--count must be in [1, 100000], got ", options.count);
  // 8192: the large images slide inference is measured on (docs/deployment.md).
  PETSEG_CHECK(options.min_side >= 16 && options.min_side <= options.max_side && options.max_side <= 8192,
               "image sides must satisfy 16 <= --min-side <= --max-side <= 8192, got --min-side ", options.min_side,
               " and --max-side ", options.max_side);
  check_choice("--layout", options.layout, {"oxford-pets", "voc", "folders"});
  SynthReport report;
  report.reused = check_out_folder(options);
  if (options.layout == "oxford-pets") {
    synthesize_pets(options, report);
  } else {
    synthesize_class_layout(options, report);
  }
  if (!report.reused) write_file_atomic(options.out / kMarker, marker_json(options).dump(1) + "\n");
  return report;
}

std::filesystem::path default_dataset(int count, uint64_t seed) {
  const fs::path cache = user_cache_dir("PETSEG_CACHE", "petseg");
  const fs::path dir = cache / ("synth-v" + std::to_string(kSynthVersion) + "-" + std::to_string(count) + "-seed" +
                                std::to_string(seed));
  if (fs::exists(dir / kManifestName)) return dir;
  // Two petseg processes may ask at once (ranks, parallel tests): one makes the set, the other waits for it.
  fs::create_directories(cache);
  const fs::path lock_path = cache / ".lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  PETSEG_CHECK(lock >= 0, "cannot open ", lock_path.string(), ": ", errno_message(errno));
  ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      ::flock(fd, LOCK_UN);
      ::close(fd);
    }
  } unlock{lock};
  if (!fs::exists(dir / kManifestName)) {
    log_info("making the default synthetic data set in ", dir.string(), " (once)");
    // Made aside and renamed into place, so a crash never leaves a half-made set under the final name.
    const fs::path partial = dir.string() + ".partial-" + std::to_string(::getpid());
    fs::remove_all(partial);  // only ever ours: a previous attempt of this very process id
    SynthOptions options;
    options.out = partial;
    options.count = count;
    options.seed = seed;
    synthesize(options);
    prepare_dataset(partial, PrepareOptions{});
    fs::rename(partial, dir);
  }
  return dir;
}

}  // namespace petseg::data
