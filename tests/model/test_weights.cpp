// model/weights: torch.save files (zip and legacy) read without Python, hostile files refused, files we write
// read back by Python.
#include "model/weights.h"

#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <gtest/gtest.h>

#include <map>

#include "core/check.h"
#include "core/fs.h"
#include "test_util.h"

namespace petseg::model {
namespace {

namespace fs = std::filesystem;

std::map<std::string, at::Tensor> as_map(const StateDict& sd) {
  std::map<std::string, at::Tensor> m;
  for (const auto& [k, v] : sd) m[k] = v;
  return m;
}

// Tensors Python writes, with the tricky cases of real checkpoints: shared storages, offsets, non-contiguous
// strides, 0-dim buffers, empty tensors, several dtypes.
constexpr const char* kMakeTensors = R"(
import torch, sys
from collections import OrderedDict
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
sd = OrderedDict()
sd['conv.weight'] = base
sd['view.offset'] = base[1:3, 2:5]          # shares base's storage, offset 8
sd['view.transposed'] = base.t()            # non-contiguous
sd['bn.num_batches_tracked'] = torch.tensor(7)
sd['empty'] = torch.zeros(0, 3)
sd['half'] = torch.tensor([1.5, -2.25], dtype=torch.float16)
sd['long'] = torch.tensor([1, -2, 3 << 40], dtype=torch.int64)
sd['double'] = torch.tensor([[0.1]], dtype=torch.float64)
torch.save(sd, sys.argv[1] + '/zip.pth')
torch.save(sd, sys.argv[1] + '/legacy.pth', _use_new_zipfile_serialization=False)
)";

TEST(Weights, ReadsZipAndLegacyTorchSaveFiles) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  testing::run_python(
      std::string(kMakeTensors).replace(0, 0, "import sys; sys.argv = ['', '" + dir.path().string() + "']\n"));
  const at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  for (const char* file : {"zip.pth", "legacy.pth"}) {
    const StateDict sd = read_state_dict(dir / file);
    ASSERT_EQ(sd.size(), 8u) << file;
    EXPECT_EQ(sd[0].first, "conv.weight") << "keys keep the file's order";
    auto m = as_map(sd);
    EXPECT_TRUE(at::equal(m["conv.weight"], base)) << file;
    EXPECT_TRUE(at::equal(m["view.offset"], base.slice(0, 1, 3).slice(1, 2, 5))) << file;
    EXPECT_TRUE(at::equal(m["view.transposed"], base.t())) << file;
    EXPECT_EQ(m["bn.num_batches_tracked"].dim(), 0);
    EXPECT_EQ(m["bn.num_batches_tracked"].item<int64_t>(), 7);
    EXPECT_EQ(m["empty"].sizes(), (std::vector<int64_t>{0, 3}));
    EXPECT_EQ(m["half"].scalar_type(), at::kHalf);
    EXPECT_EQ(m["half"][1].item<float>(), -2.25f);
    EXPECT_EQ(m["long"][2].item<int64_t>(), int64_t(3) << 40);
    EXPECT_DOUBLE_EQ(m["double"].item<double>(), 0.1);
  }
}

TEST(Weights, RefusesPicklesThatWouldRunCode) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  const fs::path marker = dir / "pwned";
  testing::run_python(R"(
import torch, os
class Evil:
    def __reduce__(self):
        return (os.system, ('touch )" +
                      marker.string() + R"(',))
torch.save({'w': Evil()}, ')" +
                      (dir / "evil.pth").string() + R"(')
torch.save({'w': Evil()}, ')" +
                      (dir / "evil_legacy.pth").string() + R"(', _use_new_zipfile_serialization=False)
)");
  ASSERT_FALSE(fs::exists(marker)) << "the payload must not have run while the file was made";
  for (const char* file : {"evil.pth", "evil_legacy.pth"}) {
    try {
      read_state_dict(dir / file);
      FAIL() << file << " was accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("posix.system"), std::string::npos) << what;
      EXPECT_NE(what.find(file), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(marker));
  }
}

TEST(Weights, RefusesTensorsThatReachPastTheirStorage) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  testing::run_python(R"(
import torch
from collections import OrderedDict
class Liar:
    def __init__(self, size, stride, offset):
        self.args = (size, stride, offset)
    def __reduce__(self):
        size, stride, offset = self.args
        storage = torch.zeros(10).storage()
        return (torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, False, OrderedDict()))
for name, liar in [('big', Liar((1000,), (1,), 0)), ('offset', Liar((5,), (1,), 8)),
                   ('stride', Liar((2, 5), (100, 1), 0))]:
    torch.save(OrderedDict(w=liar), ')" +
                      dir.path().string() + R"(/' + name + '.pth')
)");
  for (const char* file : {"big.pth", "offset.pth", "stride.pth"}) {
    try {
      read_state_dict(dir / file);
      FAIL() << file << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("past the end"), std::string::npos) << e.what();
    }
  }
}

TEST(Weights, CorruptFilesAreErrorsNotCrashes) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  testing::run_python(
      std::string(kMakeTensors).replace(0, 0, "import sys; sys.argv = ['', '" + dir.path().string() + "']\n"));
  for (const char* file : {"zip.pth", "legacy.pth"}) {
    const std::vector<uint8_t> bytes = read_file(dir / file);
    for (size_t cut : {size_t(1), size_t(10), bytes.size() / 3, bytes.size() / 2, bytes.size() - 9}) {
      EXPECT_THROW(read_state_dict(bytes.data(), cut, file), Error) << file << " cut at " << cut;
    }
    // Flipped bytes: any outcome but a crash or a hang is acceptable.
    for (size_t i = 0; i < bytes.size(); i += 97) {
      std::vector<uint8_t> flipped = bytes;
      flipped[i] ^= 0xff;
      try {
        read_state_dict(flipped.data(), flipped.size(), file);
      } catch (const Error&) {
      }
    }
  }
  const uint8_t junk[] = {'n', 'o', 'p', 'e'};
  EXPECT_THROW(read_state_dict(junk, sizeof(junk), "junk"), Error);
}

// A hostile zip directory: a record claiming to be far larger than the file would make libtorch's reader allocate
// that much; a directory pointing outside the file made it read outside the buffer (found by fuzzing).
TEST(Weights, ZipDirectoriesThatLieAreRefusedBeforeReading) {
  testing::TempDir dir;
  save_state_dict({{"w", at::arange(6, at::kFloat)}}, dir / "ok.pth");
  const std::vector<uint8_t> good = read_file(dir / "ok.pth");
  auto patched = [&](size_t field, uint32_t value) {
    std::vector<uint8_t> b = good;
    for (size_t i = 0; i + 46 < b.size(); ++i) {
      if (b[i] == 0x50 && b[i + 1] == 0x4b && b[i + 2] == 1 && b[i + 3] == 2) {  // first central directory entry
        for (int k = 0; k < 4; ++k) b[i + field + k] = uint8_t(value >> (8 * k));
        return b;
      }
    }
    ADD_FAILURE() << "no central directory entry";
    return b;
  };
  auto refused = [](const std::vector<uint8_t>& b) {
    try {
      read_state_dict(b.data(), b.size(), "lying.pth");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refused(patched(/*uncompressed size*/ 24, 0x7fff0000)).find("larger than the file"), std::string::npos);
  EXPECT_NE(refused(patched(/*compression method*/ 10, 8)).find("compressed"), std::string::npos);
  std::vector<uint8_t> eocd = good;  // the directory's offset pushed past the end of the file
  for (size_t i = eocd.size() - 22;; --i) {
    if (eocd[i] == 0x50 && eocd[i + 1] == 0x4b && eocd[i + 2] == 5 && eocd[i + 3] == 6) {
      eocd[i + 16] = eocd[i + 17] = eocd[i + 18] = 0xf0;
      break;
    }
  }
  EXPECT_NE(refused(eocd).find("lying.pth"), std::string::npos);
  EXPECT_EQ(read_state_dict(good.data(), good.size(), "ok.pth").size(), 1u);
}

TEST(Weights, PythonReadsWhatWeWrite) {
  PETSEG_REQUIRE_PYTHON();
  testing::TempDir dir;
  const at::Tensor a = at::arange(12, at::kFloat).reshape({3, 4});
  StateDict sd = {{"layer.weight", a}, {"layer.t", a.t()}, {"count", at::arange(3, at::kLong)[1]}};
  save_state_dict(sd, dir / "ours.pth");
  const std::string out = testing::run_python(R"(
import torch
sd = torch.load(')" + (dir / "ours.pth").string() +
                                              R"(')
print(list(sd.keys()), sd['layer.weight'].sum().item(), sd['layer.t'][3, 2].item(), sd['count'].item(), sd['count'].dim())
)");
  EXPECT_EQ(out, "['layer.weight', 'layer.t', 'count'] 66.0 11.0 1 0\n");
  const auto back = as_map(read_state_dict(dir / "ours.pth"));
  EXPECT_TRUE(at::equal(back.at("layer.t"), a.t()));
}

}  // namespace
}  // namespace petseg::model
