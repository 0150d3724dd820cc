// data/synth: the real layout, determinism, and never writing over a user's folder.
#include "data/synth.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "core/check.h"
#include "core/fs.h"
#include "data/oxford_pets.h"
#include "data/transforms.h"
#include "test_util.h"

namespace petseg::data {
namespace {

SynthOptions opts(const fs::path& out, uint64_t seed = 1, int threads = 0) {
  SynthOptions o;
  o.out = out;
  o.count = 40;
  o.seed = seed;
  o.min_side = 60;
  o.max_side = 120;
  o.threads = threads;
  return o;
}

TEST(Synth, WritesTheOxfordLayout) {
  testing::TempDir dir;
  const SynthReport r = synthesize(opts(dir.path()));
  EXPECT_EQ(r.trainval + r.test, 40);
  EXPECT_EQ(r.unlisted, 1);
  const std::string list = read_text_file(dir / "annotations/list.txt");
  EXPECT_EQ(list.rfind("#Image CLASS-ID SPECIES BREED ID\n", 0), 0u);
  const SplitFile all = read_split_file(dir / "annotations/list.txt");
  const SplitFile tv = read_split_file(dir / "annotations/trainval.txt");
  const SplitFile te = read_split_file(dir / "annotations/test.txt");
  EXPECT_TRUE(all.errors.empty() && tv.errors.empty() && te.errors.empty());
  EXPECT_EQ(all.records.size(), 40u);
  EXPECT_EQ(tv.records.size() + te.records.size(), 40u);
  EXPECT_EQ(read_text_file(dir / "annotations/trainval.txt").find('#'), std::string::npos);
  std::set<int> classes;
  for (const PetRecord& rec : all.records) {
    const Breed& b = oxford_breeds()[rec.class_id - 1];
    EXPECT_EQ(rec.name.rfind(std::string(b.name) + "_", 0), 0u) << rec.name;
    EXPECT_EQ(rec.species, b.species);
    EXPECT_EQ(std::isupper(rec.name[0]) != 0, b.species == 1) << "cats are capitalized: " << rec.name;
    classes.insert(rec.class_id);
    const auto img = read_file(image_path(dir.path(), rec.name));
    const auto tri = read_file(trimap_path(dir.path(), rec.name));
    const image::ImageHeader h = image::read_header(img.data(), img.size());
    EXPECT_EQ(h.format, image::ImageFormat::kJpeg);
    EXPECT_GE(std::min(h.width, h.height), 60);
    EXPECT_LE(std::max(h.width, h.height), 120);
    const image::Image t = image::decode_mask(tri.data(), tri.size());
    EXPECT_EQ(t.width, h.width);
    EXPECT_EQ(find_invalid_trimap_value(t), -1);
    std::set<uint8_t> values(t.pixels.begin(), t.pixels.end());
    EXPECT_EQ(values, (std::set<uint8_t>{1, 2, 3})) << rec.name << " needs pet, background and border";
  }
  EXPECT_EQ(classes.size(), 37u);
}

TEST(Synth, SameSeedSameFilesWhateverTheThreads) {
  testing::TempDir a, b, c;
  synthesize(opts(a.path(), 5, 1));
  synthesize(opts(b.path(), 5, 3));
  synthesize(opts(c.path(), 6, 2));
  EXPECT_EQ(testing::tree_hash(a.path()), testing::tree_hash(b.path()));
  EXPECT_NE(testing::tree_hash(a.path()), testing::tree_hash(c.path()));
}

TEST(Synth, NeverWritesIntoAForeignFolder) {
  testing::TempDir dir;
  write_file_atomic(dir / "thesis.tex", std::string("precious"));
  try {
    synthesize(opts(dir.path()));
    FAIL() << "synth wrote into a folder it did not make";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_text_file(dir / "thesis.tex"), "precious");
  testing::TempDir made;
  synthesize(opts(made.path(), 1));
  EXPECT_TRUE(synthesize(opts(made.path(), 1)).reused);
  EXPECT_THROW(synthesize(opts(made.path(), 2)), Error);
}

}  // namespace
}  // namespace petseg::data
