// torch.save's containers: the zip (checked directory, bounded reads, libtorch's PyTorchStreamReader/Writer) and the
// legacy stream; tensors materialized from storages whose sizes were checked against the file.
#include "model/torch_archive.h"

#include <ATen/ops/empty.h>
#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <map>
#include <memory>

#include "core/check.h"
#include "core/fs.h"
#include "model/pickle.h"

namespace petseg::model {
namespace {

using pickle::kind_name;
using pickle::StorageRef;
using pickle::TensorSpec;
using pickle::Unpickler;
using pickle::Value;
using pickle::ValuePtr;

StorageRef storage_from_pid(const Value& pid, const std::string& name, bool legacy) {
  auto bad = [&](const std::string& why) { PETSEG_FAIL(name, ": not a valid weights file: storage id ", why); };
  if (pid.kind != Value::Kind::kTuple || pid.items.size() < 5)
    bad("is not a ('storage', type, key, location, numel) tuple");
  const auto& it = pid.items;
  if (it[0]->kind != Value::Kind::kStr || it[0]->s != "storage") bad("does not start with 'storage'");
  if (it[1]->kind != Value::Kind::kGlobal || !pickle::storage_types().count(it[1]->s)) bad("has no storage type");
  if (it[2]->kind != Value::Kind::kStr || it[2]->s.empty() || it[2]->s.size() > 64) bad("has a bad key");
  for (char c : it[2]->s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') bad("key is not alphanumeric");
  }
  if (it[4]->kind != Value::Kind::kInt || it[4]->i < 0) bad("has a bad element count");
  StorageRef ref;
  ref.key = it[2]->s;
  ref.dtype = pickle::storage_types().at(it[1]->s);
  ref.numel = it[4]->i;
  if (legacy && it.size() >= 6 && it[5]->kind == Value::Kind::kTuple) {
    // (view_key, offset, view_size): a view into the root storage.
    const auto& view = it[5]->items;
    if (view.size() != 3 || view[1]->kind != Value::Kind::kInt || view[2]->kind != Value::Kind::kInt) bad("bad view");
    ref.view_offset = view[1]->i;
    if (ref.view_offset < 0 || view[2]->i < 0 || ref.view_offset + view[2]->i > ref.numel) bad("view out of range");
  }
  return ref;
}

// The dict of tensors a checkpoint holds: the top level, or its "model"/"state_dict" entry.
const Value& find_tensor_dict(const Value& root, const std::string& name) {
  PETSEG_CHECK(root.kind == Value::Kind::kDict, name, ": holds a ", kind_name(root.kind), ", not a state dict");
  for (const auto& [k, v] : root.dict) {
    if (k->kind == Value::Kind::kStr && (k->s == "model" || k->s == "state_dict") && v->kind == Value::Kind::kDict) {
      return *v;
    }
  }
  return root;
}

// Materializes the tensors; `storage_bytes(ref)` returns the storage's bytes (checked size).
template <class StorageFn>
StateDict materialize(const Value& root, const std::string& name, StorageFn&& storage_bytes) {
  const Value& dict = find_tensor_dict(root, name);
  std::map<std::string, at::Tensor> storages;
  StateDict out;
  for (const auto& [k, v] : dict.dict) {
    PETSEG_CHECK(k->kind == Value::Kind::kStr, name, ": a state dict key is a ", kind_name(k->kind));
    PETSEG_CHECK(v->kind == Value::Kind::kTensor, name, ": \"", k->s, "\" is a ", kind_name(v->kind), ", not a tensor");
    const TensorSpec& t = v->tensor;
    auto it = storages.find(t.storage.key);
    if (it == storages.end()) {
      const size_t elem = c10::elementSize(t.storage.dtype);
      const std::pair<const uint8_t*, size_t> bytes = storage_bytes(t.storage);
      PETSEG_CHECK(bytes.second == size_t(t.storage.numel) * elem, name, ": storage ", t.storage.key, " holds ",
                   bytes.second, " bytes, its tensors need ", size_t(t.storage.numel) * elem);
      at::Tensor s = at::empty({t.storage.numel}, at::TensorOptions().dtype(t.storage.dtype));
      if (bytes.second) std::memcpy(s.data_ptr(), bytes.first, bytes.second);
      it = storages.emplace(t.storage.key, s).first;
    }
    // Every element the view touches must lie inside the storage (arithmetic checked: a hostile file's sizes and
    // strides can overflow int64, found by fuzzing).
    int64_t last = 0, numel = 1;
    bool overflow = __builtin_add_overflow(t.offset, t.storage.view_offset, &last);
    for (size_t d = 0; d < t.size.size(); ++d) {
      PETSEG_CHECK(t.size[d] >= 0 && t.stride[d] >= 0 && t.size[d] < (int64_t(1) << 40), name, ": \"", k->s,
                   "\" has a bad size or stride");
      if (t.size[d] == 0) numel = 0;
      int64_t reach = 0;
      if (t.size[d] > 0) {
        overflow = overflow || __builtin_mul_overflow(t.size[d] - 1, t.stride[d], &reach) ||
                   __builtin_add_overflow(last, reach, &last);
      }
    }
    PETSEG_CHECK(t.offset >= 0 && t.storage.view_offset >= 0 && (numel == 0 || (!overflow && last < t.storage.numel)),
                 name, ": \"", k->s, "\" reaches past the end of its storage");
    out.emplace_back(k->s, it->second.as_strided(t.size, t.stride, t.offset + t.storage.view_offset));
  }
  return out;
}

// libtorch's MemoryReadAdapter copies whatever range miniz asks for, and a corrupt central directory makes it ask
// for ranges outside the buffer (found by fuzzing): this one hands over only what exists.
class BoundedReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  BoundedReadAdapter(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= size_) return 0;
    n = std::min<uint64_t>(n, size_ - pos);
    std::memcpy(buf, data_ + pos, n);
    return n;  // a short read is an error to miniz
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// Checks the zip's central directory before libtorch's reader sees it: torch.save stores records uncompressed,
// so every record must be stored (method 0) and the records' sizes together must fit in the file. Otherwise a
// header claiming a huge record would make the reader allocate that much.
void check_zip_directory(const uint8_t* data, size_t size, const std::string& name) {
  auto fail = [&](const char* why) { PETSEG_FAIL(name, ": not a valid torch.save zip file (", why, ")"); };
  if (size < 22) fail("too short for a zip directory");
  size_t eocd = size - 22;
  const size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  while (le(data + eocd, 4) != 0x06054b50) {
    if (eocd == lowest) fail("no end-of-directory record");
    --eocd;
  }
  uint64_t entries = le(data + eocd + 10, 2), cd_size = le(data + eocd + 12, 4), cd_offset = le(data + eocd + 16, 4);
  if (entries == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    if (eocd < 20 || le(data + eocd - 20, 4) != 0x07064b50) fail("zip64 locator missing");
    const uint64_t z = le(data + eocd - 20 + 8, 8);
    if (z > size || size - z < 56 || le(data + z, 4) != 0x06064b50) fail("zip64 directory record out of the file");
    entries = le(data + z + 32, 8);
    cd_size = le(data + z + 40, 8);
    cd_offset = le(data + z + 48, 8);
  }
  if (cd_offset > size || cd_size > size - cd_offset || entries > cd_size / 46) fail("directory out of the file");
  uint64_t total = 0;
  size_t at = size_t(cd_offset);
  const size_t end = size_t(cd_offset + cd_size);
  for (uint64_t i = 0; i < entries; ++i) {
    if (end - at < 46 || le(data + at, 4) != 0x02014b50) fail("broken directory entry");
    const uint64_t method = le(data + at + 10, 2), name_len = le(data + at + 28, 2), extra_len = le(data + at + 30, 2),
                   comment_len = le(data + at + 32, 2);
    uint64_t comp = le(data + at + 20, 4), uncomp = le(data + at + 24, 4), offset = le(data + at + 42, 4);
    if (46 + name_len + extra_len + comment_len > end - at) fail("broken directory entry");
    // zip64 sizes and offset live in extra field 0x0001, in this order, for the fields set to 0xffffffff.
    for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = le(data + x, 2), len = le(data + x + 2, 2);
      if (x + 4 + len > at + 46 + name_len + extra_len) fail("broken extra field");
      if (id == 1) {
        size_t f = x + 4;
        for (uint64_t* v : {&uncomp, &comp, &offset}) {
          if (*v != 0xffffffff) continue;
          if (f + 8 > x + 4 + len) fail("broken zip64 field");
          *v = le(data + f, 8);
          f += 8;
        }
      }
      x += 4 + len;
    }
    if (method != 0) fail("a compressed record; torch.save stores its records uncompressed");
    if (uncomp != comp || uncomp > size || offset > size) fail("a record larger than the file");
    total += uncomp;
    if (total > size) fail("records larger than the file");
    at += size_t(46 + name_len + extra_len + comment_len);
  }
}

StateDict read_zip_unchecked(const uint8_t* data, size_t size, const std::string& name) {
  check_zip_directory(data, size, name);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::make_shared<BoundedReadAdapter>(data, size));
  } catch (const c10::Error& e) {
    PETSEG_FAIL(name, ": not a valid torch.save zip file (", e.what_without_backtrace(), ")");
  }
  PETSEG_CHECK(reader->hasRecord("data.pkl"), name, ": a zip file, but not one torch.save wrote (no data.pkl)");
  auto [pkl, pkl_size] = reader->getRecord("data.pkl");
  Unpickler up(static_cast<const uint8_t*>(pkl.get()), pkl_size, 0, name,
               [&](const Value& pid) { return storage_from_pid(pid, name, false); });
  const ValuePtr root = up.run();
  std::vector<at::DataPtr> keep;
  return materialize(*root, name, [&](const StorageRef& ref) {
    const std::string record = "data/" + ref.key;
    PETSEG_CHECK(reader->hasRecord(record), name, ": storage ", ref.key, " is missing from the zip");
    auto [ptr, n] = reader->getRecord(record);
    keep.push_back(std::move(ptr));
    return std::make_pair(static_cast<const uint8_t*>(keep.back().get()), n);
  });
}

// libtorch's zip reader reports corrupt records with c10::Error; ours are petseg::Error naming the file.
StateDict read_zip(const uint8_t* data, size_t size, const std::string& name) {
  try {
    return read_zip_unchecked(data, size, name);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    PETSEG_FAIL(name, ": corrupt torch.save zip file (", what.substr(0, what.find('\n')), ")");
  }
}

// Legacy torch.save: pickled magic number, protocol version, system info, the object (storages by persistent
// id), the list of storage keys, then each storage as an int64 element count and its raw little-endian bytes.
StateDict read_legacy(const uint8_t* data, size_t size, const std::string& name) {
  size_t pos = 0;
  auto next = [&](Unpickler::PersistentLoad pl = {}) {
    Unpickler up(data, size, pos, name, std::move(pl));
    ValuePtr v = up.run();
    pos = up.position();
    return v;
  };
  const ValuePtr magic = next();
  static const std::string kMagic = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";  // 0x1950a86a20f9469cfc6c
  PETSEG_CHECK(magic->kind == Value::Kind::kBigInt && magic->s == kMagic, name,
               ": a pickle, but not a torch.save file (wrong magic number)");
  const ValuePtr protocol = next();
  PETSEG_CHECK(protocol->kind == Value::Kind::kInt && protocol->i == 1001, name,
               ": unsupported legacy torch.save protocol");
  const ValuePtr sys_info = next();
  PETSEG_CHECK(sys_info->kind == Value::Kind::kDict, name, ": legacy system info missing");
  for (const auto& [k, v] : sys_info->dict) {
    if (k->kind == Value::Kind::kStr && k->s == "little_endian") {
      PETSEG_CHECK(v->kind == Value::Kind::kBool && v->i, name, ": written on a big-endian machine; not supported");
    }
  }
  std::map<std::string, StorageRef> requested;
  const ValuePtr root = next([&](const Value& pid) {
    StorageRef ref = storage_from_pid(pid, name, true);
    requested.emplace(ref.key, ref);
    return ref;
  });
  const ValuePtr keys = next();
  PETSEG_CHECK(keys->kind == Value::Kind::kList, name, ": legacy storage key list missing");
  std::map<std::string, std::pair<const uint8_t*, size_t>> blobs;
  for (const auto& k : keys->items) {
    PETSEG_CHECK(k->kind == Value::Kind::kStr, name, ": bad legacy storage key");
    auto it = requested.find(k->s);
    PETSEG_CHECK(it != requested.end(), name, ": storage ", k->s, " is stored but never used");
    PETSEG_CHECK(size - pos >= 8, name, ": truncated (storage ", k->s, ")");
    int64_t numel;
    std::memcpy(&numel, data + pos, 8);
    pos += 8;
    const size_t elem = c10::elementSize(it->second.dtype);
    PETSEG_CHECK(numel >= 0 && uint64_t(numel) <= (size - pos) / elem, name, ": truncated (storage ", k->s, " claims ",
                 numel, " elements)");
    PETSEG_CHECK(numel == it->second.numel, name, ": storage ", k->s, " has ", numel, " elements, expected ",
                 it->second.numel);
    blobs[k->s] = {data + pos, size_t(numel) * elem};
    pos += size_t(numel) * elem;
  }
  return materialize(*root, name, [&](const StorageRef& ref) {
    auto it = blobs.find(ref.key);
    PETSEG_CHECK(it != blobs.end(), name, ": storage ", ref.key, " is missing");
    return it->second;
  });
}

}  // namespace

bool zip_has_record(const uint8_t* data, size_t size, const std::string& record) {
  try {
    check_zip_directory(data, size, "zip");
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReadAdapter>(data, size));
    return reader.hasRecord(record);
  } catch (const std::exception&) {
    return false;
  }
}

StateDict read_state_dict(const uint8_t* data, size_t size, const std::string& name) {
  PETSEG_CHECK(size > 0, name, ": empty file");
  if (size >= 4 && data[0] == 'P' && data[1] == 'K' && data[2] == 3 && data[3] == 4) return read_zip(data, size, name);
  if (data[0] == 0x80) return read_legacy(data, size, name);
  if (size > 262 && std::memcmp(data + 257, "ustar", 5) == 0) {
    PETSEG_FAIL(name, ": a tar-format checkpoint (PyTorch < 0.4); re-save it with a newer torch.save");
  }
  PETSEG_FAIL(name, ": not a torch.save file (neither a zip archive nor a pickle)");
}

StateDict read_state_dict(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return read_state_dict(bytes.data(), bytes.size(), path.string());
}

void write_state_dict(const StateDict& state, const std::function<size_t(const void*, size_t)>& sink) {
  std::vector<at::Tensor> storages;
  pickle::Writer w;
  w.op(pickle::kProto);
  w.op(2);  // protocol 2
  w.global("collections", "OrderedDict");
  w.op(pickle::kEmptyTuple);
  w.op(pickle::kReduce);
  w.op(pickle::kMark);
  for (const auto& [key, tensor] : state) {
    const at::Tensor t = tensor.detach().cpu().contiguous();
    const std::string storage_key = std::to_string(storages.size());
    storages.push_back(t);
    w.str(key);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op(pickle::kMark);
    w.op(pickle::kMark);
    w.str("storage");
    w.global("torch", pickle::storage_type_name(t.scalar_type()));
    w.str(storage_key);
    w.str("cpu");
    w.integer(t.numel());
    w.op(pickle::kTuple);
    w.op(pickle::kBinPersId);
    w.integer(0);
    w.ints(t.sizes());
    w.ints(t.strides());
    w.op(pickle::kNewFalse);
    w.global("collections", "OrderedDict");
    w.op(pickle::kEmptyTuple);
    w.op(pickle::kReduce);
    w.op(pickle::kTuple);
    w.op(pickle::kReduce);
  }
  w.op(pickle::kSetItems);
  w.op(pickle::kStop);
  caffe2::serialize::PyTorchStreamWriter writer(sink);
  writer.writeRecord("data.pkl", w.bytes().data(), w.bytes().size());
  for (size_t i = 0; i < storages.size(); ++i) {
    writer.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(), storages[i].nbytes());
  }
  writer.writeEndOfFile();
}

}  // namespace petseg::model
