// data/oxford_pets: split files, the prepare step on a set with every kind of junk, quarantine that never
// deletes, and the index the loader reads.
#include "data/oxford_pets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/fs.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "test_util.h"

namespace petseg::data {
namespace {

std::vector<uint64_t> content_hashes(const fs::path& root) {
  std::vector<uint64_t> hashes;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().filename() != kManifestName) hashes.push_back(testing::file_hash(e.path()));
  }
  std::sort(hashes.begin(), hashes.end());
  return hashes;
}

SynthOptions small_set(const fs::path& out, bool junk) {
  SynthOptions o;
  o.out = out;
  o.count = 60;
  o.seed = 11;
  o.junk = junk;
  o.min_side = 48;
  o.max_side = 96;
  return o;
}

TEST(SplitFile, ParsesRecordsSkipsCommentsAndReportsBadLines) {
  testing::TempDir dir;
  write_file_atomic(dir / "trainval.txt", std::string("#Image CLASS-ID SPECIES BREED ID\n"
                                                      "Abyssinian_1 1 1 1\r\n"
                                                      "\n"
                                                      "beagle_7 5 2 4\n"
                                                      "broken line\n"
                                                      "beagle_7 5 2 4\n"
                                                      "../etc/passwd 1 1 1\n"));
  const SplitFile f = read_split_file(dir / "trainval.txt");
  ASSERT_EQ(f.records.size(), 2u);
  EXPECT_EQ(f.records[0].name, "Abyssinian_1");
  EXPECT_EQ(f.records[1].class_id, 5);
  EXPECT_EQ(f.records[1].species, 2);
  EXPECT_EQ(f.records[1].breed_id, 4);
  ASSERT_EQ(f.errors.size(), 3u);
  EXPECT_NE(f.errors[0].find("trainval.txt:5:"), std::string::npos) << f.errors[0];
  EXPECT_NE(f.errors[1].find("listed twice"), std::string::npos) << f.errors[1];
  EXPECT_NE(f.errors[2].find("not a plain file name"), std::string::npos) << f.errors[2];
}

TEST(Prepare, ReportsEveryKindOfJunkWithItsReasonAndAcceptsTheRest) {
  testing::TempDir dir;
  const SynthReport report = synthesize(small_set(dir.path(), /*junk=*/true));
  ASSERT_GE(report.junk.size(), 14u);
  const Manifest m = prepare_dataset(dir.path(), {});
  std::map<std::string, const ManifestSample*> by_name;
  for (const auto& s : m.samples) by_name[s.name] = &s;
  std::map<std::string, const StrayFile*> strays;
  for (const auto& f : m.strays) strays[f.path] = &f;

  std::set<std::string> junk_names;
  for (const PlantedJunk& j : report.junk) {
    const auto colon = j.expect.find(':');
    const std::string kind = j.expect.substr(0, colon), code = j.expect.substr(colon + 1);
    if (kind == "stray") {
      ASSERT_TRUE(strays.count(j.path)) << j.path << " not reported as stray";
      EXPECT_EQ(strays[j.path]->reason_code, code) << j.path;
      continue;
    }
    junk_names.insert(j.name);
    ASSERT_TRUE(by_name.count(j.name)) << j.name << " missing from the manifest";
    const ManifestSample& s = *by_name[j.name];
    if (kind == "rejected") {
      EXPECT_FALSE(s.accepted) << j.name;
      EXPECT_EQ(s.reason_code, code) << j.name << ": " << s.reason;
      EXPECT_NE(s.reason.find(j.name), std::string::npos) << "reason must name the file: " << s.reason;
    } else {
      EXPECT_TRUE(s.accepted) << j.name << ": " << s.reason;
      EXPECT_NE(std::find(s.conversions.begin(), s.conversions.end(), code), s.conversions.end())
          << j.name << " should be converted with " << code;
    }
  }
  int good = 0, unlisted = 0;
  for (const auto& s : m.samples) {
    if (junk_names.count(s.name)) continue;
    EXPECT_TRUE(s.accepted) << s.name << ": " << s.reason;
    EXPECT_TRUE(s.conversions.empty()) << s.name;
    good += s.accepted;
    unlisted += s.splits.empty();
  }
  EXPECT_EQ(good, 60 + report.unlisted);
  EXPECT_EQ(unlisted, report.unlisted);
  EXPECT_TRUE(fs::exists(dir / kManifestName));
  // The manifest reads back as written.
  const Manifest back = read_manifest(dir / kManifestName);
  EXPECT_EQ(back.samples.size(), m.samples.size());
  EXPECT_EQ(back.strays.size(), m.strays.size());
  const std::string summary = format_prepare_summary(m, dir.path());
  EXPECT_NE(summary.find("truncated_jpeg"), std::string::npos) << summary;
}

TEST(Prepare, QuarantineMovesNeverDeletesAndRestores) {
  testing::TempDir dir;
  const SynthReport report = synthesize(small_set(dir.path(), /*junk=*/true));
  const auto before = content_hashes(dir.path());
  const uint64_t tree_before = testing::tree_hash(dir.path());
  const Manifest m = prepare_dataset(dir.path(), {/*quarantine=*/true});
  EXPECT_EQ(content_hashes(dir.path()), before) << "a file was lost or changed";
  int moved = 0;
  for (const auto& s : m.samples) {
    if (s.accepted) {
      EXPECT_TRUE(s.quarantined.empty());
      continue;
    }
    for (const fs::path& p : {image_path(dir.path(), s.name), trimap_path(dir.path(), s.name)}) {
      EXPECT_FALSE(fs::exists(p)) << p << " of a rejected sample is still in place";
    }
    moved += int(s.quarantined.size());
  }
  for (const auto& f : m.strays) {
    EXPECT_FALSE(fs::exists(dir / f.path));
    EXPECT_TRUE(fs::exists(dir / f.quarantined_to)) << f.quarantined_to;
    ++moved;
  }
  EXPECT_GT(moved, 8);
  EXPECT_TRUE(fs::is_directory(dir / "quarantine/images"));
  // After quarantine, the set is clean: a second prepare finds only the split line with no image.
  const Manifest again = prepare_dataset(dir.path(), {});
  EXPECT_TRUE(again.strays.empty());
  // Restore puts every file back where it was.
  EXPECT_EQ(restore_quarantine(dir.path()), moved);
  EXPECT_FALSE(fs::exists(dir / "quarantine")) << "the emptied quarantine folder should be gone";
  fs::remove(dir / kManifestName);
  EXPECT_EQ(testing::tree_hash(dir.path()), tree_before);
  (void)report;
}

TEST(Prepare, NamesTheProblemWithAFolder) {
  testing::TempDir dir;
  try {
    prepare_dataset(dir / "nope", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  fs::create_directories(dir / "images");
  try {
    prepare_dataset(dir.path(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("annotations/trimaps"), std::string::npos) << e.what();
  }
}

TEST(Dataset, UsesTheManifestWhenPresentAndTheSplitFileOtherwise) {
  testing::TempDir dir;
  synthesize(small_set(dir.path(), /*junk=*/true));
  const SegmentationDataset raw = SegmentationDataset::open(dir.path(), Split::kTrainval);
  EXPECT_FALSE(raw.validated());
  const Manifest m = prepare_dataset(dir.path(), {});
  const SegmentationDataset checked = SegmentationDataset::open(dir.path(), Split::kTrainval);
  EXPECT_TRUE(checked.validated());
  size_t accepted = 0;
  for (const auto& s : m.samples) {
    accepted += s.accepted && std::find(s.splits.begin(), s.splits.end(), "trainval") != s.splits.end();
  }
  EXPECT_EQ(checked.size(), accepted);
  EXPECT_LT(checked.size(), raw.size());
  EXPECT_GT(SegmentationDataset::open(dir.path(), Split::kAll).size(), checked.size());
}

TEST(Dataset, CorruptManifestIsAClearError) {
  testing::TempDir dir;
  synthesize(small_set(dir.path(), false));
  write_file_atomic(dir / kManifestName, std::string("{\"format\": \"petseg-manifest\", \"version\": 1, \"sampl"));
  try {
    SegmentationDataset::open(dir.path(), Split::kTrainval);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(kManifestName), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("prepare"), std::string::npos) << e.what();
  }
  write_file_atomic(dir / kManifestName, std::string("{\"format\": \"petseg-manifest\", \"version\": 1, "
                                                     "\"samples\": [{\"name\": \"../../etc/x\"}], \"strays\": []}"));
  EXPECT_THROW(SegmentationDataset::open(dir.path(), Split::kTrainval), Error);
}

}  // namespace
}  // namespace petseg::data
