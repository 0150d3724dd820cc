// data/prepare on the VOC and folders layouts: every planted broken file reported with its reason, quarantine that
// moves and never deletes, restore that puts everything back, the manifest read back by open; and the loader's
// batches from both layouts.
#include "data/prepare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/fs.h"
#include "core/labels.h"
#include "data/folders.h"
#include "data/loader.h"
#include "data/synth.h"
#include "data/voc.h"
#include "test_util.h"

namespace petseg::data {
namespace {

SynthOptions junk_set(const fs::path& out, const std::string& layout) {
  SynthOptions o;
  o.out = out;
  o.layout = layout;
  o.count = 24;
  o.seed = 21;
  o.junk = true;
  o.min_side = 40;
  o.max_side = 72;
  return o;
}

PrepareOptions colours_of(const fs::path& root, bool rgb) {
  PrepareOptions p;
  if (rgb) p.class_colors = root / kSynthClassColorsFile;
  return p;
}

std::vector<uint64_t> content_hashes(const fs::path& root) {
  std::vector<uint64_t> hashes;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().filename() != kManifestName) hashes.push_back(testing::file_hash(e.path()));
  }
  std::sort(hashes.begin(), hashes.end());
  return hashes;
}

// Every planted file is reported as planted (the reason names the file); every other sample is accepted.
void expect_junk_reported(const SynthReport& report, const Manifest& m, const std::string& what) {
  std::map<std::string, const ManifestSample*> by_name;
  for (const auto& s : m.samples) by_name[s.name] = &s;
  std::map<std::string, const StrayFile*> strays;
  for (const auto& f : m.strays) strays[f.path] = &f;
  std::set<std::string> junk_names;
  for (const PlantedJunk& j : report.junk) {
    const auto colon = j.expect.find(':');
    const std::string kind = j.expect.substr(0, colon), code = j.expect.substr(colon + 1);
    if (kind == "stray") {
      ASSERT_TRUE(strays.count(j.path)) << what << ": " << j.path << " not reported as stray";
      EXPECT_EQ(strays[j.path]->reason_code, code) << what << ": " << j.path;
    } else if (kind == "ignored") {
      EXPECT_FALSE(strays.count(j.path)) << what << ": " << j.path;
      EXPECT_FALSE(by_name.count(fs::path(j.path).stem().string())) << what << ": " << j.path << " became a sample";
    } else {
      junk_names.insert(j.name);
      ASSERT_TRUE(by_name.count(j.name)) << what << ": " << j.name << " missing from the manifest";
      const ManifestSample& s = *by_name[j.name];
      if (kind == "rejected") {
        EXPECT_FALSE(s.accepted) << what << ": " << j.name;
        EXPECT_EQ(s.reason_code, code) << what << ": " << j.name << ": " << s.reason;
        EXPECT_EQ(s.reason.rfind(j.path + ": ", 0), 0u) << what << ": the reason must name the file: " << s.reason;
      } else {
        EXPECT_TRUE(s.accepted) << what << ": " << j.name << ": " << s.reason;
        EXPECT_EQ(s.conversions, std::vector<std::string>{code}) << what << ": " << j.name;
      }
    }
  }
  int good = 0;
  for (const auto& s : m.samples) {
    if (junk_names.count(s.name)) continue;
    EXPECT_TRUE(s.accepted) << what << ": " << s.name << ": " << s.reason;
    good += s.accepted;
  }
  EXPECT_EQ(good, 24 + report.unlisted) << what;
}

TEST(PrepareLayouts, VocReportsEveryKindOfBrokenFile) {
  testing::TempDir dir;
  const SynthReport report = synthesize(junk_set(dir.path(), "voc"));
  const Manifest m = prepare_dataset(dir.path(), {});
  EXPECT_EQ(m.layout, "voc");
  EXPECT_EQ(m.classes, voc_class_names());
  EXPECT_EQ(m.mask_encoding, "class-index");
  expect_junk_reported(report, m, "voc");
  const Manifest back = read_manifest(dir / kManifestName);
  EXPECT_EQ(back.layout, "voc");
  ASSERT_EQ(back.samples.size(), m.samples.size());
  EXPECT_EQ(back.samples[0].image, m.samples[0].image);
  const std::string summary = format_prepare_summary(m, dir.path());
  for (const char* text : {"layout         voc", "21: background, aeroplane", "train.txt", "mask_bad_value",
                           "mask_size_mismatch", "missing_mask"}) {
    EXPECT_NE(summary.find(text), std::string::npos) << text << " not in\n" << summary;
  }
}

TEST(PrepareLayouts, FoldersReportEveryKindOfBrokenFileInEachVariant) {
  struct Variant {
    const char* what;
    bool split_files, classes_file, rgb;
  };
  for (const Variant v : {Variant{"seeded", false, true, false}, Variant{"split files", true, true, false},
                          Variant{"counted classes", false, false, false}, Variant{"rgb", true, true, true}}) {
    testing::TempDir dir;
    SynthOptions o = junk_set(dir.path(), "folders");
    o.split_files = v.split_files;
    o.classes_file = v.classes_file;
    o.rgb_masks = v.rgb;
    const SynthReport report = synthesize(o);
    const Manifest m = prepare_dataset(dir.path(), colours_of(dir.path(), v.rgb));
    EXPECT_EQ(m.layout, "folders");
    EXPECT_EQ(m.seeded_split, !v.split_files) << v.what;
    EXPECT_EQ(m.mask_encoding, v.rgb ? "rgb-colors" : "class-index") << v.what;
    EXPECT_EQ(m.classes.size(), 5u) << v.what;
    EXPECT_EQ(m.classes[1], v.classes_file ? "cat" : "class_1") << v.what;
    expect_junk_reported(report, m, v.what);
  }
}

TEST(PrepareLayouts, QuarantineMovesNeverDeletesAndRestores) {
  for (const std::string layout : {"voc", "folders"}) {
    testing::TempDir dir;
    SynthOptions o = junk_set(dir.path(), layout);
    o.split_files = true;
    synthesize(o);
    const auto before = content_hashes(dir.path());
    const uint64_t tree_before = testing::tree_hash(dir.path());
    PrepareOptions p;
    p.quarantine = true;
    const Manifest m = prepare_dataset(dir.path(), p);
    EXPECT_EQ(content_hashes(dir.path()), before) << layout << ": a file was lost or changed";
    int moved = 0;
    for (const auto& s : m.samples) {
      if (s.accepted) continue;
      for (const std::string& rel : {s.image, s.mask}) EXPECT_FALSE(fs::exists(dir / rel)) << layout << ": " << rel;
      moved += int(s.quarantined.size());
    }
    for (const auto& f : m.strays) {
      EXPECT_FALSE(fs::exists(dir / f.path)) << layout << ": " << f.path;
      EXPECT_TRUE(fs::exists(dir / f.quarantined_to)) << layout << ": " << f.quarantined_to;
      ++moved;
    }
    EXPECT_GT(moved, 8) << layout;
    // After quarantine the set is clean: a second prepare finds no stray and only the listed stem with no image.
    const Manifest again = prepare_dataset(dir.path(), {});
    EXPECT_TRUE(again.strays.empty()) << layout;
    for (const auto& s : again.samples) EXPECT_TRUE(s.accepted || s.reason_code == "missing_image") << s.reason;
    EXPECT_EQ(restore_quarantine(dir.path()), moved) << layout;
    EXPECT_FALSE(fs::exists(dir / "quarantine")) << layout;
    fs::remove(dir / kManifestName);
    EXPECT_EQ(testing::tree_hash(dir.path()), tree_before) << layout;
  }
}

TEST(PrepareLayouts, OpenReadsOnlyTheAcceptedSamplesOfTheSplit) {
  testing::TempDir dir;
  synthesize(junk_set(dir.path(), "voc"));
  const SegmentationDataset raw = SegmentationDataset::open(dir.path(), Split::kTrainval);
  EXPECT_FALSE(raw.validated());
  const Manifest m = prepare_dataset(dir.path(), {});
  const SegmentationDataset checked = SegmentationDataset::open(dir.path(), Split::kTrainval);
  EXPECT_TRUE(checked.validated());
  size_t accepted = 0;
  for (const auto& s : m.samples) accepted += s.accepted && s.splits == std::vector<std::string>{"train"};
  EXPECT_EQ(checked.size(), accepted);
  EXPECT_LT(checked.size(), raw.size());
}

TEST(PrepareLayouts, TheManifestRemembersTheClassColoursFile) {
  testing::TempDir dir;
  SynthOptions o = junk_set(dir.path(), "folders");
  o.rgb_masks = true;
  synthesize(o);
  prepare_dataset(dir.path(), colours_of(dir.path(), true));
  const SegmentationDataset d = SegmentationDataset::open(dir.path(), Split::kAll);  // no --class-colors: the manifest's
  EXPECT_EQ(d[0].mask_encoding, MaskEncoding::kRgbColors);
  EXPECT_EQ(d.class_names(), synth_folder_classes());
  // A prepare run again without the option keeps reading the masks as colours.
  EXPECT_EQ(prepare_dataset(dir.path(), {}).mask_encoding, "rgb-colors");
}

TEST(LoaderLayouts, BatchesFromVocAndFolders) {
  for (const std::string layout : {"voc", "folders"}) {
    testing::TempDir dir;
    SynthOptions o = junk_set(dir.path(), layout);
    o.junk = false;
    o.rgb_masks = layout == "folders";
    synthesize(o);
    prepare_dataset(dir.path(), colours_of(dir.path(), o.rgb_masks));
    auto ds = std::make_shared<const SegmentationDataset>(SegmentationDataset::open(dir.path(), Split::kAll));
    LoaderOptions lo;
    lo.batch_size = 4;
    lo.image_size = 48;
    lo.num_workers = 2;
    lo.seed = 3;
    lo.bad_samples = BadSamplePolicy::kFail;
    DataLoader loader(ds, lo);
    loader.start_epoch(0);
    std::set<int64_t> indices, values;
    while (auto b = loader.next()) {
      EXPECT_EQ(b->images.size(1), 3);
      EXPECT_EQ(b->masks.size(2), 48);
      indices.insert(b->indices.begin(), b->indices.end());
      const int64_t* m = b->masks.data_ptr<int64_t>();
      values.insert(m, m + b->masks.numel());
    }
    EXPECT_EQ(indices.size(), ds->size()) << layout;
    for (int64_t v : values) EXPECT_TRUE(v == kIgnoreIndex || (v >= 0 && v < ds->num_classes())) << layout << ": " << v;
    EXPECT_GE(values.size(), 4u) << layout << ": too few classes in the batches";
  }
}

}  // namespace
}  // namespace petseg::data
