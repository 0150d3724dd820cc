// data/class_counts: the class pixel counts the manifest records (prepare's per-mask values, through the run's lut)
// equal a recount from the masks, in every layout, under every --border and --ignore-index, for seeded splits too; a
// recount shared out in strides sums to the whole; a manifest from before the counts has none.
#include "data/class_counts.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "test_util.h"

namespace petseg::data {
namespace {

// A prepared set with every kind of broken file (rejected samples must be in neither count).
fs::path prepared_set(const testing::TempDir& dir, const std::string& layout) {
  SynthOptions o;
  o.out = dir / layout;
  o.layout = layout;
  o.count = 20;
  o.seed = 3;
  o.junk = layout != "folders";
  o.min_side = 40;
  o.max_side = 72;
  synthesize(o);
  prepare_dataset(o.out, {});
  return o.out;
}

void expect_recorded_equals_recount(const fs::path& root, const DatasetOptions& options, const std::string& what) {
  const SegmentationDataset set = SegmentationDataset::open(root, Split::kTrainval, options);
  ASSERT_TRUE(set.recorded_class_counts()) << what << ": the manifest has no counts";
  const ClassPixelCounts& recorded = *set.recorded_class_counts();
  const CountedMasks recount = count_class_pixels(set, options.border, /*threads=*/2);
  EXPECT_TRUE(recount.unreadable.empty()) << what << ": " << recount.unreadable.front();
  EXPECT_EQ(recount.masks, int64_t(set.size())) << what;
  EXPECT_EQ(recorded.class_pixels, recount.counts.class_pixels) << what;
  EXPECT_EQ(recorded.image_pixels, recount.counts.image_pixels) << what;
  int64_t present = 0;
  for (int64_t p : recorded.class_pixels) present += p > 0;
  EXPECT_GE(present, 2) << what << ": too few classes for the comparison to mean anything";
  // Ranks count every world-th mask and sum their shares.
  ClassPixelCounts shares(set.num_classes());
  for (size_t rank = 0; rank < 3; ++rank) shares.add(count_class_pixels(set, options.border, 1, rank, 3).counts);
  EXPECT_EQ(shares.class_pixels, recorded.class_pixels) << what;
  EXPECT_EQ(shares.image_pixels, recorded.image_pixels) << what;
}

TEST(ClassCounts, TheManifestsEqualARecountInEveryLayoutAndMode) {
  testing::TempDir dir;
  const fs::path pets = prepared_set(dir, "oxford-pets");
  for (BorderMode border : {BorderMode::kClass, BorderMode::kIgnore}) {
    DatasetOptions o;
    o.border = border;
    expect_recorded_equals_recount(pets, o, std::string("pets, --border ") + border_mode_name(border));
  }
  const fs::path voc = prepared_set(dir, "voc");
  DatasetOptions o;
  expect_recorded_equals_recount(voc, o, "voc");
  o.ignore_index = 0;  // the background left out of both counts
  expect_recorded_equals_recount(voc, o, "voc, --ignore-index 0");
  EXPECT_EQ(SegmentationDataset::open(voc, Split::kTrainval, o).recorded_class_counts()->class_pixels[0], 0);
  const fs::path folders = prepared_set(dir, "folders");  // no split files: the split is drawn from the seed
  for (uint64_t seed : {1, 2}) {
    DatasetOptions f;
    f.seed = seed;
    f.val_fraction = 0.3;
    expect_recorded_equals_recount(folders, f, "folders, seed " + std::to_string(seed));
  }
}

TEST(ClassCounts, AManifestWithoutCountsHasNone) {
  testing::TempDir dir;
  const fs::path pets = prepared_set(dir, "oxford-pets");
  auto doc = nlohmann::json::parse(read_text_file(pets / kManifestName));
  for (auto& s : doc["samples"]) s.erase("mask_pixels");
  write_file_atomic(pets / kManifestName, doc.dump());
  const SegmentationDataset set = SegmentationDataset::open(pets, Split::kTrainval);
  EXPECT_FALSE(set.recorded_class_counts());
  EXPECT_GT(count_class_pixels(set, BorderMode::kClass).masks, 0);
}

TEST(ClassCounts, ValuesCountThroughTheLut) {
  image::Image mask(4, 2, 1);
  mask.pixels = {1, 1, 2, 2, 2, 3, 255, 1};
  const MaskValuePixels values = mask_value_pixels(mask);
  EXPECT_EQ(values, (MaskValuePixels{{1, 3}, {2, 3}, {3, 1}, {255, 1}}));
  ClassPixelCounts ignore_border(2);
  ignore_border.add(values, trimap_lut(BorderMode::kIgnore));
  EXPECT_EQ(ignore_border.class_pixels, (std::vector<int64_t>{3, 3}));  // pet, background; border and 255 ignored
  EXPECT_EQ(ignore_border.image_pixels, (std::vector<int64_t>{6, 6}));
  const MaskValuePixels beyond = {{256, 1}};
  EXPECT_NE(testing::error_of([&] { ignore_border.add(beyond, trimap_lut(BorderMode::kClass)); }), "no error");
}

}  // namespace
}  // namespace petseg::data
