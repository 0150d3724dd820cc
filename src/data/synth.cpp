// Synthetic data sets: one pipeline for every layout (plan the samples, draw each from its own generator, plant the
// junk, write the index files), one table of the kinds of broken file, the --out checks, and the embedded default
// set. What varies by layout is its SynthStyle (the pets: synth_pets.cpp; VOC and folders: synth_classes.cpp).
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
using namespace synth_draw;

constexpr const char* kMarker = ".petseg-synth.json";
constexpr int kSynthVersion = 2;  // bump whenever the generated pixels of the pets change

const SynthStyle& style_for(const std::string& layout) {
  return layout == "oxford-pets" ? pets_synth_style() : class_synth_style(layout);
}

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

// The image file of a sample, as its junk wants it.
std::vector<uint8_t> image_bytes(const SynthScene& s, const SynthSample& p) {
  switch (p.junk) {
    case Junk::kPngNamedJpg:
      return image::encode_png(s.rgb);
    case Junk::kGrayscale: {
      image::Image gray(s.rgb.width, s.rgb.height, 1);
      for (size_t i = 0; i < gray.pixels.size(); ++i) {
        const uint8_t* c = &s.rgb.pixels[i * 3];
        gray.pixels[i] = uint8_t((299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000);
      }
      return image::encode_jpeg(gray, 90);
    }
    case Junk::kPalette: {
      image::PngOptions png;
      const image::Image idx = to_palette(s.rgb, &png.palette_rgb);
      return image::encode_png(idx, png);
    }
    case Junk::kRgba: {
      image::Image rgba(s.rgb.width, s.rgb.height, 4);
      for (size_t i = 0; i < size_t(s.rgb.width) * s.rgb.height; ++i) {
        std::copy_n(&s.rgb.pixels[i * 3], 3, &rgba.pixels[i * 4]);
        rgba.pixels[i * 4 + 3] = 255;
      }
      return image::encode_png(rgba);
    }
    case Junk::kTruncatedImage: {
      auto bytes = image::encode_jpeg(s.rgb, 90);
      bytes.resize(bytes.size() * 3 / 5);
      return bytes;
    }
    case Junk::kEmptyImage:
      return {};
    case Junk::kUnreadableImage: {
      const std::string garbage = "this is not an image\n";
      return {garbage.begin(), garbage.end()};
    }
    default:
      return p.image_ext == ".png" ? image::encode_png(s.rgb) : image::encode_jpeg(s.rgb, 90);
  }
}

// One sample from its own generator (seeded by the set's seed and its number: the same set whatever the thread
// count), its junk planted: every layout's samples go through here.
void write_sample(const fs::path& root, const SynthSample& p, uint64_t seed, const SynthStyle& style,
                  const SynthOptions& o) {
  if (p.junk == Junk::kMissingImage) return;  // only its split file names it
  Rng rng(seed);
  const int w = int(rng.randint(o.min_side, o.max_side)), h = int(rng.randint(o.min_side, o.max_side));
  SynthScene s = style.render(w, h, rng.next(), p);
  write_bytes(root / style.image_path(p), image_bytes(s, p));
  const fs::path mask = root / style.mask_path(p);
  switch (p.junk) {
    case Junk::kNoMask:
      return;
    case Junk::kEmptyMask:
      return write_bytes(mask, {});
    case Junk::kUnreadableMask: {
      auto bytes = style.encode_mask(s.mask, p, o);
      bytes.resize(bytes.size() / 2);
      return write_bytes(mask, bytes);
    }
    case Junk::kMaskWrongSize:
      return write_bytes(mask, style.encode_mask(image::Image(w + 7, h, 1), p, o));
    case Junk::kMaskBadValue:
      for (int y = 0; y < std::min(h, 8); ++y) std::fill_n(s.mask.row(y), std::min(w, 8), style.bad_mask_value());
      break;
    default:
      break;
  }
  write_bytes(mask, style.encode_mask(s.mask, p, o));
}

// Every sample planned (with --junk, one of every broken kind the layout meets, each reported with what prepare
// must say of it), and the split counts.
std::vector<SynthSample> plan(const SynthStyle& style, const SynthOptions& o, SynthReport& report) {
  std::vector<SynthSample> samples = style.samples(o);
  if (o.junk) {
    int k = 0;
    for (Junk junk : style.junk_kinds(o)) {
      const SynthSample p = style.junk_sample(k++, junk, o);
      const bool breaks_image = junk < Junk::kNoMask || junk == Junk::kMissingImage;
      report.junk.push_back({breaks_image ? style.image_path(p) : style.mask_path(p), p.name,
                             style.expectation(junk, o)});
      samples.push_back(p);
    }
  }
  const bool split_files = style.has_split_files(o);
  report.trainval = report.test = report.unlisted = 0;
  for (const auto& p : samples) {
    report.trainval += split_files && p.split == 0;
    report.test += p.split == 1;
    report.unlisted += p.split < 0;
  }
  report.samples = int(samples.size());
  return samples;
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

}  // namespace

// The rejection and conversion codes prepare gives each kind of junk; the mask's word is the layout's ("trimap").
std::string common_expectation(Junk junk, const std::string& mask) {
  switch (junk) {
    case Junk::kPngNamedJpg:
      return "converted:png_named_jpg";
    case Junk::kGrayscale:
      return "converted:grayscale->rgb";
    case Junk::kPalette:
      return "converted:palette->rgb";
    case Junk::kRgba:
      return "converted:rgba->rgb";
    case Junk::kTruncatedImage:
      return "rejected:truncated_jpeg";
    case Junk::kEmptyImage:
      return "rejected:empty_image";
    case Junk::kUnreadableImage:
      return "rejected:unreadable_image";
    case Junk::kNoMask:
      return "rejected:missing_" + mask;
    case Junk::kMaskWrongSize:
      return "rejected:" + mask + "_size_mismatch";
    case Junk::kMaskBadValue:
      return "rejected:" + mask + "_bad_value";
    case Junk::kUnreadableMask:
      return "rejected:unreadable_" + mask;
    case Junk::kEmptyMask:
      return "rejected:empty_" + mask;
    case Junk::kMissingImage:
      return "rejected:missing_image";
    default:
      return "";
  }
}

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
  const SynthStyle& style = style_for(options.layout);
  const std::vector<SynthSample> samples = plan(style, options, report);
  if (report.reused) return report;
  const fs::path root = options.out;
  style.create_folders(root);
  parallel_for(samples.size(), options.threads,
               [&](size_t i) { write_sample(root, samples[i], mix_seed(options.seed, i), style, options); });
  if (options.junk) style.write_strays(root, samples, options, report);
  style.write_index_files(root, samples, options);
  write_file_atomic(options.out / kMarker, marker_json(options).dump(1) + "\n");
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
