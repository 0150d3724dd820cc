// data/layout, voc, folders, masks: each layout recognised and read (splits, classes, mask values through the loader's
// transform), the forced layout and the error naming what was looked for, VOC's 255 kept as ignore, the seeded split,
// classes from classes.txt or counted, RGB masks through a class-colours file.
#include "data/layout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/fs.h"
#include "core/labels.h"
#include "data/folders.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "data/voc.h"
#include "test_util.h"

namespace petseg::data {
namespace {

SynthOptions synth_set(const fs::path& out, const std::string& layout, uint64_t seed = 5) {
  SynthOptions o;
  o.out = out;
  o.layout = layout;
  o.count = 24;
  o.seed = seed;
  o.min_side = 40;
  o.max_side = 72;
  return o;
}

DatasetOptions with_layout(const std::string& layout) {
  DatasetOptions o;
  o.layout = layout;
  return o;
}

using testing::error_of;

std::vector<std::string> names_of(const SegmentationDataset& d) {
  std::vector<std::string> names;
  for (const auto& s : d.samples()) names.push_back(s.name);
  return names;
}

// The mask the loader makes of sample i in evaluation mode (resized to S x S, nearest neighbour for the mask).
std::vector<int64_t> loader_mask(const SegmentationDataset& d, size_t i, int S) {
  LoaderOptions o;
  o.batch_size = 1;
  o.image_size = S;
  o.train = false;
  o.shuffle = false;
  o.bad_samples = BadSamplePolicy::kFail;
  const Batch b = load_batch(d, {int64_t(i)}, 0, o, /*pin=*/false);
  const int64_t* m = b.masks.data_ptr<int64_t>();
  return std::vector<int64_t>(m, m + b.masks.numel());
}

// What that mask must be: the stored values, resized the same way, through `lut`.
std::vector<int64_t> expected_mask(const fs::path& mask_file, int S, const MaskLut& lut) {
  const auto bytes = read_file(mask_file);
  const image::Image r = resize_nearest(image::decode_mask(bytes.data(), bytes.size()), S, S);
  std::vector<int64_t> out;
  for (uint8_t v : r.pixels) out.push_back(lut[v]);
  return out;
}

TEST(Layouts, ChoicesNameEveryRegisteredLayout) {
  EXPECT_EQ(layout_choices(), (Choices{"auto", "oxford-pets", "voc", "folders"}));
  for (const Layout* l : layouts()) EXPECT_EQ(&layout_named(l->name()), l);
}

// What varies by layout is asked of the layout: titles, colours, how predictions are stored, which options apply.
TEST(Layouts, EachAnswersWhatVariesByLayout) {
  const Layout& pets = layout_named("oxford-pets");
  const Layout& voc = layout_named("voc");
  const Layout& folders = layout_named("folders");
  EXPECT_STREQ(pets.title(), "Oxford-IIIT Pet");
  EXPECT_EQ(voc.title_of("/data/VOC2012"), "Pascal VOC");
  EXPECT_EQ(folders.title_of("/data/roads/"), "roads");
  EXPECT_EQ(pets.stored_value(0), 1) << "the pets' masks hold trimap values";
  EXPECT_EQ(voc.stored_value(20), 20);
  EXPECT_EQ(pets.palette(3).size(), 3u);
  EXPECT_EQ(pets.palette(2).size(), 2u) << "--border ignore: pet and background";
  EXPECT_EQ(voc.palette(21)[1], (image::Color{128, 0, 0})) << "VOC's aeroplane";
  EXPECT_TRUE(pets.has_trimap_border() && !pets.takes_ignore_index());
  EXPECT_TRUE(folders.takes_class_colors() && !voc.takes_class_colors());
}

TEST(Layouts, RecognisesEachLayoutFromWhatIsInTheFolder) {
  for (const std::string layout : {"oxford-pets", "voc", "folders"}) {
    testing::TempDir dir;
    synthesize(synth_set(dir.path(), layout));
    EXPECT_EQ(resolve_layout(dir.path(), "auto", nullptr).name(), layout);
    const SegmentationDataset d = SegmentationDataset::open(dir.path(), Split::kAll);
    EXPECT_EQ(d.layout(), layout);
    EXPECT_GE(d.size(), 20u) << layout;
  }
}

TEST(Layouts, NoLayoutIsAnErrorNamingWhatWasLookedFor) {
  testing::TempDir dir;
  fs::create_directories(dir / "photos");
  const std::string e = error_of([&] { SegmentationDataset::open(dir.path(), Split::kAll); });
  for (const char* looked :
       {"images/ and annotations/trimaps/", "JPEGImages/ and SegmentationClass/", "images/ and masks/", "--layout"}) {
    EXPECT_NE(e.find(looked), std::string::npos) << e;
  }
  EXPECT_NE(e.find(dir.path().string()), std::string::npos) << e;
  const std::string unknown = error_of([&] { SegmentationDataset::open(dir.path(), Split::kAll, with_layout("coco")); });
  EXPECT_NE(unknown.find("unknown --layout \"coco\"; valid: auto, oxford-pets, voc, folders"), std::string::npos)
      << unknown;
}

TEST(Layouts, ForcedLayoutWinsAndMustMatchTheFolder) {
  testing::TempDir dir;
  synthesize(synth_set(dir.path(), "oxford-pets"));
  fs::create_directories(dir / "masks");  // now the folder also has the folders layout's two folders
  write_file_atomic(dir / "classes.txt", std::string("background\nthing\n"));
  EXPECT_EQ(SegmentationDataset::open(dir.path(), Split::kAll).layout(), "oxford-pets");
  DatasetOptions folders;
  folders.layout = "folders";
  const SegmentationDataset forced = SegmentationDataset::open(dir.path(), Split::kAll, folders);
  EXPECT_EQ(forced.layout(), "folders");
  EXPECT_EQ(forced[0].mask_encoding, MaskEncoding::kClassIndex);
  const std::string e = error_of([&] { SegmentationDataset::open(dir.path(), Split::kAll, with_layout("voc")); });
  EXPECT_NE(e.find("Pascal VOC"), std::string::npos) << e;
  EXPECT_NE(e.find("JPEGImages/"), std::string::npos) << e;
  // A manifest made for one layout is not read as another's.
  prepare_dataset(dir.path(), {});
  const std::string stale = error_of([&] { SegmentationDataset::open(dir.path(), Split::kAll, folders); });
  EXPECT_NE(stale.find("written for the oxford-pets layout"), std::string::npos) << stale;
  EXPECT_NE(stale.find("prepare --layout folders"), std::string::npos) << stale;
}

TEST(Layouts, PetsKeepTheirClassesByBorderMode) {
  testing::TempDir dir;
  synthesize(synth_set(dir.path(), "oxford-pets"));
  const SegmentationDataset three = SegmentationDataset::open(dir.path(), Split::kTrainval);
  EXPECT_EQ(three.class_names(), (std::vector<std::string>{"pet", "background", "border"}));
  DatasetOptions o;
  o.border = BorderMode::kIgnore;
  const SegmentationDataset two = SegmentationDataset::open(dir.path(), Split::kTrainval, o);
  EXPECT_EQ(two.num_classes(), 2);
  // The loader maps trimaps by its own border option (LoaderOptions::border, the default 3class here).
  EXPECT_EQ(loader_mask(two, 0, 40), expected_mask(two[0].mask, 40, trimap_lut(BorderMode::kClass)));
}

TEST(Voc, ReadsSplitsAndClassesAndKeeps255AsIgnore) {
  testing::TempDir dir;
  const SynthReport r = synthesize(synth_set(dir.path(), "voc"));
  const SegmentationDataset train = SegmentationDataset::open(dir.path(), Split::kTrainval);
  const SegmentationDataset val = SegmentationDataset::open(dir.path(), Split::kTest);
  EXPECT_EQ(int(train.size()), r.trainval);
  EXPECT_EQ(int(val.size()), r.test);
  EXPECT_EQ(SegmentationDataset::open(dir.path(), Split::kAll).size(), train.size() + val.size());
  EXPECT_EQ(read_stem_file(dir / "ImageSets/Segmentation/val.txt").stems, names_of(val));
  ASSERT_EQ(train.num_classes(), 21);
  EXPECT_EQ(train.class_names(), voc_class_names());
  EXPECT_EQ(train.class_names()[15], "person");
  EXPECT_EQ(train[0].image, dir / "JPEGImages" / (train[0].name + ".jpg"));
  EXPECT_EQ(train[0].mask, dir / "SegmentationClass" / (train[0].name + ".png"));
  std::set<int64_t> seen;
  for (size_t i = 0; i < train.size(); ++i) {
    const auto mask = loader_mask(train, i, 48);
    EXPECT_EQ(mask, expected_mask(train[i].mask, 48, train.mask_lut(train[i], BorderMode::kClass)));
    seen.insert(mask.begin(), mask.end());
  }
  // No padding in evaluation: the 255s are VOC's object borders, kept as the ignore index.
  EXPECT_TRUE(seen.count(kIgnoreIndex));
  EXPECT_TRUE(seen.count(0));
  for (int64_t v : seen) EXPECT_TRUE(v == 0 || v == 3 || v == 7 || v == 8 || v == 12 || v == 15 || v == 255) << v;
  // The masks are palette PNGs in VOC's colours.
  const auto bytes = read_file(train[0].mask);
  EXPECT_EQ(image::read_header(bytes.data(), bytes.size()).color, "palette");
}

TEST(Folders, SplitFilesDriveTheSplit) {
  testing::TempDir dir;
  SynthOptions o = synth_set(dir.path(), "folders");
  o.split_files = true;
  const SynthReport r = synthesize(o);
  const SegmentationDataset train = SegmentationDataset::open(dir.path(), Split::kTrainval);
  const SegmentationDataset val = SegmentationDataset::open(dir.path(), Split::kTest);
  EXPECT_EQ(int(train.size()), r.trainval);
  EXPECT_EQ(int(val.size()), r.test);
  EXPECT_EQ(read_stem_file(dir / "val.txt").stems, names_of(val));
  // Images come in every extension the layout reads.
  std::set<std::string> exts;
  for (const auto& s : train.samples()) exts.insert(s.image.extension().string());
  EXPECT_EQ(exts, (std::set<std::string>{".jpg", ".jpeg", ".png"}));
  // A stem in both split files is reported.
  write_file_atomic(dir / "val.txt", read_text_file(dir / "val.txt") + train[0].name + "\n");
  const Manifest m = prepare_dataset(dir.path(), {});
  ASSERT_EQ(m.split_errors.size(), 1u);
  EXPECT_NE(m.split_errors[0].find("\"" + train[0].name + "\" is in train.txt and val.txt"), std::string::npos);
}

TEST(Folders, SeededSplitIsTheSameOnEveryOpenAndMovesWithTheSeed) {
  testing::TempDir dir;
  SynthOptions so = synth_set(dir.path(), "folders");
  so.count = 40;
  synthesize(so);
  DatasetOptions o;
  o.seed = 3;
  const auto val = names_of(SegmentationDataset::open(dir.path(), Split::kTest, o));
  const auto train = names_of(SegmentationDataset::open(dir.path(), Split::kTrainval, o));
  EXPECT_EQ(val.size(), 4u);  // 10% of 40
  EXPECT_EQ(train.size(), 36u);
  EXPECT_EQ(names_of(SegmentationDataset::open(dir.path(), Split::kTest, o)), val);
  std::set<std::string> all(val.begin(), val.end());
  all.insert(train.begin(), train.end());
  EXPECT_EQ(all.size(), 40u) << "the two splits overlap";
  // The manifest does not fix the split: the same draw before and after prepare.
  prepare_dataset(dir.path(), {});
  EXPECT_EQ(names_of(SegmentationDataset::open(dir.path(), Split::kTest, o)), val);
  o.seed = 4;
  EXPECT_NE(names_of(SegmentationDataset::open(dir.path(), Split::kTest, o)), val);
  o.val_fraction = 0.25;
  EXPECT_EQ(SegmentationDataset::open(dir.path(), Split::kTest, o).size(), 10u);
  o.val_fraction = 1.0;
  EXPECT_NE(error_of([&] { SegmentationDataset::open(dir.path(), Split::kTest, o); }).find("--val-fraction"), std::string::npos);
}

TEST(Folders, SeededValidationDependsOnlyOnTheSeedAndTheStems) {
  const std::vector<std::string> stems = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  std::vector<std::string> reversed(stems.rbegin(), stems.rend());
  const auto pick = [](const std::vector<std::string>& s, const std::vector<bool>& val) {
    std::set<std::string> out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (val[i]) out.insert(s[i]);
    }
    return out;
  };
  EXPECT_EQ(pick(stems, seeded_validation(stems, 9, 0.3)), pick(reversed, seeded_validation(reversed, 9, 0.3)));
  EXPECT_EQ(pick(stems, seeded_validation(stems, 9, 0.3)).size(), 3u);
  EXPECT_EQ(pick(stems, seeded_validation(stems, 9, 0.01)).size(), 1u);  // at least one when asked for some
  EXPECT_TRUE(pick(stems, seeded_validation(stems, 9, 0.0)).empty());
}

TEST(Folders, ClassesFromClassesTxtOrCountedFromTheMasks) {
  testing::TempDir named, counted;
  synthesize(synth_set(named.path(), "folders"));
  EXPECT_EQ(SegmentationDataset::open(named.path(), Split::kAll).class_names(), synth_folder_classes());
  SynthOptions o = synth_set(counted.path(), "folders");
  o.classes_file = false;
  synthesize(o);
  const std::vector<std::string> expected = {"class_0", "class_1", "class_2", "class_3", "class_4"};
  EXPECT_EQ(SegmentationDataset::open(counted.path(), Split::kAll).class_names(), expected);  // counted on open
  const Manifest m = prepare_dataset(counted.path(), {});
  EXPECT_EQ(m.classes, expected);  // counted by prepare, recorded
  EXPECT_EQ(SegmentationDataset::open(counted.path(), Split::kAll).class_names(), expected);
  // classes.txt names them, even classes no mask holds.
  write_file_atomic(counted / "classes.txt", std::string("sky\nroad\ncar\ntree\nsign\nbike\nlamp\n"));
  const SegmentationDataset seven = SegmentationDataset::open(counted.path(), Split::kAll);
  EXPECT_EQ(seven.num_classes(), 7);
  EXPECT_EQ(seven.class_names()[6], "lamp");
}

TEST(Folders, RgbMasksMapThroughTheColoursFileToTheSameClasses) {
  testing::TempDir index_dir, rgb_dir;
  synthesize(synth_set(index_dir.path(), "folders", 8));
  SynthOptions o = synth_set(rgb_dir.path(), "folders", 8);
  o.rgb_masks = true;
  synthesize(o);
  DatasetOptions colors;
  colors.class_colors = rgb_dir / kSynthClassColorsFile;
  const SegmentationDataset rgb = SegmentationDataset::open(rgb_dir.path(), Split::kAll, colors);
  const SegmentationDataset index = SegmentationDataset::open(index_dir.path(), Split::kAll);
  EXPECT_EQ(rgb.class_names(), index.class_names());
  ASSERT_EQ(names_of(rgb), names_of(index));
  EXPECT_EQ(rgb[0].mask_encoding, MaskEncoding::kRgbColors);
  std::set<int64_t> seen;
  for (size_t i = 0; i < rgb.size(); ++i) {
    const auto mask = loader_mask(rgb, i, 40);
    EXPECT_EQ(mask, loader_mask(index, i, 40)) << rgb[i].name;
    seen.insert(mask.begin(), mask.end());
  }
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2, 3, 4, kIgnoreIndex}));
}

TEST(Folders, UnknownColourIsAnErrorNamingTheFileAndTheColour) {
  testing::TempDir dir;
  fs::create_directories(dir / "images");
  fs::create_directories(dir / "masks");
  image::Image img(8, 8, 3), mask(8, 8, 3);
  mask.pixels[(1 * 8 + 2) * 3] = 9;  // pixel (2,1) is 9,0,0
  const auto img_png = image::encode_png(img);
  write_file_atomic(dir / "images/a.png", img_png.data(), img_png.size());
  const auto mask_png = image::encode_png(mask);
  write_file_atomic(dir / "masks/a.png", mask_png.data(), mask_png.size());
  write_file_atomic(dir / "colors.txt", std::string("0,0,0 background\n255,0,0 thing\n"));
  DatasetOptions o;
  o.class_colors = dir / "colors.txt";
  const SegmentationDataset d = SegmentationDataset::open(dir.path(), Split::kAll, o);
  const std::string e = error_of([&] { loader_mask(d, 0, 16); });
  EXPECT_NE(e.find((dir / "masks/a.png").string()), std::string::npos) << e;
  EXPECT_NE(e.find("colour 9,0,0 (pixel 2,1)"), std::string::npos) << e;
  EXPECT_NE(e.find("colors.txt"), std::string::npos) << e;
  // Without the colours file, RGB masks say how to read them: when the classes are counted, and when loaded.
  EXPECT_NE(error_of([&] { SegmentationDataset::open(dir.path(), Split::kAll); }).find("--class-colors"), std::string::npos);
  write_file_atomic(dir / "classes.txt", std::string("background\nthing\n"));
  const SegmentationDataset plain = SegmentationDataset::open(dir.path(), Split::kAll);
  EXPECT_NE(error_of([&] { loader_mask(plain, 0, 16); }).find("--class-colors"), std::string::npos);
}

TEST(Manifest, PetsManifestsFromBeforeLayoutsStillReadAndPathsStayInside) {
  const Manifest old = parse_manifest(
      R"({"format": "petseg-manifest", "version": 1, "strays": [],
          "samples": [{"name": "Abyssinian_1", "splits": ["trainval"], "accepted": true}]})",
      "m.json");
  EXPECT_EQ(old.layout, "oxford-pets");
  ASSERT_EQ(old.samples.size(), 1u);
  EXPECT_EQ(old.samples[0].image, "images/Abyssinian_1.jpg");
  EXPECT_EQ(old.samples[0].mask, "annotations/trimaps/Abyssinian_1.png");
  const std::string escape = error_of([] {
    parse_manifest(R"({"format": "petseg-manifest", "version": 1, "layout": "voc", "strays": [], "samples": [
                       {"name": "a", "image": "../a.jpg", "mask": "m/a.png", "splits": [], "accepted": true}]})",
                   "m.json");
  });
  EXPECT_NE(escape.find("m.json: bad sample path \"../a.jpg\""), std::string::npos) << escape;
  EXPECT_NE(error_of([] {
              parse_manifest(R"({"format": "petseg-manifest", "version": 1, "layout": "coco", "strays": [],
                                 "samples": []})",
                             "m.json");
            }).find("unknown layout \"coco\""),
            std::string::npos);
}

TEST(ClassColors, ParsesNamesColoursAndIgnoreAndRejectsBadLines) {
  const ClassColors c =
      parse_class_colors("# R,G,B name\n0,0,0 background\n128, 0, 0  aero plane\n\n224,224,192 ignore\n", "c.txt");
  EXPECT_EQ(c.class_names, (std::vector<std::string>{"background", "aero plane"}));
  EXPECT_EQ(c.class_of.at(0x800000), 1);
  EXPECT_EQ(c.class_of.at(0xE0E0C0), kIgnoreIndex);
  EXPECT_NE(error_of([] { parse_class_colors("0,0 sky\n", "c.txt"); }).find("c.txt:1: expected \"R,G,B name\""),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_class_colors("0,0,300 sky\n", "c.txt"); }).find("c.txt:1:"), std::string::npos);
  EXPECT_NE(error_of([] { parse_class_colors("1,2,3 a\n1,2,3 b\n", "c.txt"); }).find("1,2,3 is listed twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_class_colors("1,2,3 a\n1,2,4 a\n", "c.txt"); }).find("\"a\" is listed twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_class_colors("/nonexistent/colors.txt"); }).find("/nonexistent/colors.txt"),
            std::string::npos);
}

TEST(Masks, ValuesBeyondTheClassesAreFoundAndIgnoreIsNot) {
  image::Image m(4, 1, 1);
  m.pixels = {0, 2, 255, 1};
  EXPECT_EQ(find_value_beyond(m, 3), -1);
  EXPECT_EQ(max_class_value(m), 2);
  m.pixels[1] = 5;
  EXPECT_EQ(find_value_beyond(m, 3), 5);
  const MaskLut lut = mask_lut(MaskEncoding::kClassIndex, 3, BorderMode::kClass);
  EXPECT_EQ(lut[2], 2);
  EXPECT_EQ(lut[3], kIgnoreIndex);
  EXPECT_EQ(lut[255], kIgnoreIndex);
  EXPECT_EQ(mask_lut(MaskEncoding::kTrimap, 2, BorderMode::kIgnore)[3], kIgnoreIndex);
}

}  // namespace
}  // namespace petseg::data
