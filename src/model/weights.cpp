// The safe torch.save reader/writer. The unpickler is an explicit stack machine over a closed set of opcodes;
// globals resolve to a fixed table of native handlers. Tensors are described while unpickling and materialized
// only afterwards, from storages whose sizes were checked against the file.
#include "model/weights.h"

#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>
#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <variant>

#include "core/check.h"
#include "core/fs.h"

namespace petseg::model {
namespace {

// ------------------------------------------------------------------ values of the pickle machine

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct StorageRef {
  std::string key;
  at::ScalarType dtype = at::kFloat;
  int64_t numel = 0;
  int64_t view_offset = 0;  // legacy storage views
};

struct TensorSpec {
  StorageRef storage;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kBigInt,
    kFloat,
    kStr,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor,
    kMark
  };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;                                    // kStr, kGlobal ("module.name"), kBigInt (little-endian bytes)
  std::vector<ValuePtr> items;                      // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;  // kDict, in insertion order
  StorageRef storage;
  TensorSpec tensor;
};

ValuePtr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
    case Value::Kind::kBigInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kStr:
      return "str";
    case Value::Kind::kTuple:
      return "tuple";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kGlobal:
      return "global";
    case Value::Kind::kStorage:
      return "storage";
    case Value::Kind::kTensor:
      return "tensor";
    default:
      return "mark";
  }
}

// The only globals a state dict needs.
const std::map<std::string, at::ScalarType>& storage_types() {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},       {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},       {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool},
  };
  return types;
}

const std::set<std::string>& callable_globals() {
  static const std::set<std::string> names = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                              "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter"};
  return names;
}

// ------------------------------------------------------------------ the unpickler

class Unpickler {
 public:
  // Resolves a persistent id (the tuple torch.save writes for a storage) to a storage value.
  using PersistentLoad = std::function<StorageRef(const Value& pid)>;

  Unpickler(const uint8_t* data, size_t size, size_t pos, std::string name, PersistentLoad persistent_load)
      : data_(data), size_(size), pos_(pos), name_(std::move(name)), persistent_load_(std::move(persistent_load)) {}

  ValuePtr run();
  size_t position() const { return pos_; }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    PETSEG_FAIL(name_, ": not a valid weights file: ", what, " (at byte ", pos_, ")");
  }
  uint8_t byte() {
    if (pos_ >= size_) fail("unexpected end of data");
    return data_[pos_++];
  }
  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) fail("a length of " + std::to_string(n) + " bytes runs past the end");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
  }
  std::string line() {
    std::string s;
    for (;;) {
      const char c = char(byte());
      if (c == '\n') return s;
      if (s.size() > 256) fail("a global name is too long");
      s += c;
    }
  }
  ValuePtr pop() {
    if (stack_.empty() || stack_.back()->kind == Value::Kind::kMark) fail("stack underflow");
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.empty() || stack_.back()->kind == Value::Kind::kMark) fail("stack underflow");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_to_mark() {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1]->kind != Value::Kind::kMark) --m;
    if (m == 0) fail("missing MARK");
    std::vector<ValuePtr> items(stack_.begin() + m, stack_.end());
    stack_.resize(m - 1);
    return items;
  }
  void memo_put(uint64_t key) {
    if (memo_.size() > 10'000'000) fail("too many memo entries");
    memo_[key] = top();
  }
  ValuePtr memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " was never stored");
    return it->second;
  }
  ValuePtr global(const std::string& module, const std::string& name);
  ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args);
  ValuePtr str(std::string s) {
    auto v = make(Value::Kind::kStr);
    v->s = std::move(s);
    return v;
  }
  ValuePtr integer(int64_t i) {
    auto v = make(Value::Kind::kInt);
    v->i = i;
    return v;
  }
  int64_t as_int(const ValuePtr& v, const char* what) {
    if (v->kind != Value::Kind::kInt) fail(std::string(what) + " must be an int, got " + kind_name(v->kind));
    return v->i;
  }
  std::vector<int64_t> as_ints(const ValuePtr& v, const char* what) {
    if (v->kind != Value::Kind::kTuple && v->kind != Value::Kind::kList) fail(std::string(what) + " must be a tuple");
    std::vector<int64_t> out;
    for (const auto& x : v->items) out.push_back(as_int(x, what));
    return out;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_;
  std::string name_;
  PersistentLoad persistent_load_;
  std::vector<ValuePtr> stack_;
  std::map<uint64_t, ValuePtr> memo_;
};

ValuePtr Unpickler::global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  if (!callable_globals().count(full) && !storage_types().count(full)) {
    PETSEG_FAIL(name_, ": refusing to load: the file's pickle names the global '", full,
                "', which a weights file never needs (allowed: collections.OrderedDict, "
                "torch._utils._rebuild_tensor_v2 and the torch.*Storage types). No code was run.");
  }
  auto v = make(Value::Kind::kGlobal);
  v->s = full;
  return v;
}

ValuePtr Unpickler::reduce(const ValuePtr& callable, const ValuePtr& args) {
  if (callable->kind != Value::Kind::kGlobal) fail("REDUCE on a " + std::string(kind_name(callable->kind)));
  if (args->kind != Value::Kind::kTuple) fail("REDUCE arguments must be a tuple");
  const std::string& fn = callable->s;
  const auto& a = args->items;
  if (fn == "collections.OrderedDict") {
    if (!a.empty()) fail("OrderedDict() with arguments");
    return make(Value::Kind::kDict);
  }
  if (fn == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks)
    if (a.empty() || a[0]->kind != Value::Kind::kTensor) fail("_rebuild_parameter without a tensor");
    return a[0];
  }
  if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
    // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
    if (a.size() < 4 || a[0]->kind != Value::Kind::kStorage) fail("malformed _rebuild_tensor arguments");
    auto t = make(Value::Kind::kTensor);
    t->tensor.storage = a[0]->storage;
    t->tensor.offset = as_int(a[1], "storage offset");
    t->tensor.size = as_ints(a[2], "tensor size");
    t->tensor.stride = as_ints(a[3], "tensor stride");
    if (t->tensor.size.size() != t->tensor.stride.size() || t->tensor.size.size() > 16) fail("bad tensor rank");
    return t;
  }
  fail("cannot call " + fn);
}

ValuePtr Unpickler::run() {
  for (;;) {
    const uint8_t op = byte();
    switch (op) {
      case 0x80:
        byte();
        break;  // PROTO
      case 0x95:
        le(8);
        break;  // FRAME
      case '.':
        return pop();  // STOP
      case '(':
        stack_.push_back(make(Value::Kind::kMark));
        break;
      case 'N':
        stack_.push_back(make(Value::Kind::kNone));
        break;
      case 0x88:
      case 0x89: {
        auto v = make(Value::Kind::kBool);
        v->i = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'K':
        stack_.push_back(integer(byte()));
        break;
      case 'M':
        stack_.push_back(integer(int64_t(le(2))));
        break;
      case 'J':
        stack_.push_back(integer(int32_t(uint32_t(le(4)))));
        break;
      case 0x8a: {  // LONG1: little-endian two's complement
        const size_t n = byte();
        if (n > 8) {  // only the legacy format's magic number is this wide
          const uint8_t* p = take(n);
          auto v = make(Value::Kind::kBigInt);
          v->s.assign(reinterpret_cast<const char*>(p), n);
          stack_.push_back(v);
          break;
        }
        if (n == 0) {
          stack_.push_back(integer(0));
          break;
        }
        uint64_t v = le(n);
        if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);
        stack_.push_back(integer(int64_t(v)));
        break;
      }
      case 'G': {
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        double d;
        std::memcpy(&d, &bits, 8);
        auto v = make(Value::Kind::kFloat);
        v->f = d;
        stack_.push_back(v);
        break;
      }
      case 'X': {
        const size_t n = le(4);
        const uint8_t* p = take(n);
        stack_.push_back(str(std::string(reinterpret_cast<const char*>(p), n)));
        break;
      }
      case 0x8c:
      case 'U': {  // SHORT_BINUNICODE, SHORT_BINSTRING
        const size_t n = byte();
        const uint8_t* p = take(n);
        stack_.push_back(str(std::string(reinterpret_cast<const char*>(p), n)));
        break;
      }
      case 'T': {  // BINSTRING
        const size_t n = le(4);
        const uint8_t* p = take(n);
        stack_.push_back(str(std::string(reinterpret_cast<const char*>(p), n)));
        break;
      }
      case '}':
        stack_.push_back(make(Value::Kind::kDict));
        break;
      case ']':
        stack_.push_back(make(Value::Kind::kList));
        break;
      case ')':
        stack_.push_back(make(Value::Kind::kTuple));
        break;
      case 't': {
        auto v = make(Value::Kind::kTuple);
        v->items = pop_to_mark();
        stack_.push_back(v);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        auto v = make(Value::Kind::kTuple);
        v->items.resize(op - 0x84);
        for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
        stack_.push_back(v);
        break;
      }
      case 'q':
        memo_put(byte());
        break;
      case 'r':
        memo_put(le(4));
        break;
      case 0x94:
        memo_put(memo_.size());
        break;
      case 'h':
        stack_.push_back(memo_get(byte()));
        break;
      case 'j':
        stack_.push_back(memo_get(le(4)));
        break;
      case 'c': {
        const std::string module = line();
        const std::string name = line();
        stack_.push_back(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const ValuePtr name = pop(), module = pop();
        if (name->kind != Value::Kind::kStr || module->kind != Value::Kind::kStr) fail("STACK_GLOBAL needs strings");
        stack_.push_back(global(module->s, name->s));
        break;
      }
      case 'R': {
        const ValuePtr args = pop(), callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case 'Q': {
        const ValuePtr pid = pop();
        if (!persistent_load_) fail("persistent id outside a state dict");
        auto v = make(Value::Kind::kStorage);
        v->storage = persistent_load_(*pid);
        stack_.push_back(v);
        break;
      }
      case 'b': {  // BUILD: only the OrderedDict's _metadata (version info) comes this way; it is not needed.
        const ValuePtr state = pop();
        if (top()->kind != Value::Kind::kDict && top()->kind != Value::Kind::kTensor) {
          fail("BUILD on a " + std::string(kind_name(top()->kind)));
        }
        (void)state;
        break;
      }
      case 's': {
        const ValuePtr value = pop(), key = pop();
        if (top()->kind != Value::Kind::kDict) fail("SETITEM on a non-dict");
        top()->dict.emplace_back(key, value);
        break;
      }
      case 'u': {
        auto items = pop_to_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        ValuePtr& d = top();
        if (d->kind != Value::Kind::kDict) fail("SETITEMS on a non-dict");
        for (size_t i = 0; i < items.size(); i += 2) d->dict.emplace_back(items[i], items[i + 1]);
        break;
      }
      case 'a': {
        const ValuePtr value = pop();
        if (top()->kind != Value::Kind::kList) fail("APPEND on a non-list");
        top()->items.push_back(value);
        break;
      }
      case 'e': {
        auto items = pop_to_mark();
        ValuePtr& l = top();
        if (l->kind != Value::Kind::kList) fail("APPENDS on a non-list");
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        fail(std::string("pickle opcode ") + hex + " is not allowed in a weights file");
      }
    }
  }
}

// ------------------------------------------------------------------ from values to a state dict

StorageRef storage_from_pid(const Value& pid, const std::string& name, bool legacy) {
  auto bad = [&](const std::string& why) { PETSEG_FAIL(name, ": not a valid weights file: storage id ", why); };
  if (pid.kind != Value::Kind::kTuple || pid.items.size() < 5)
    bad("is not a ('storage', type, key, location, numel) tuple");
  const auto& it = pid.items;
  if (it[0]->kind != Value::Kind::kStr || it[0]->s != "storage") bad("does not start with 'storage'");
  if (it[1]->kind != Value::Kind::kGlobal || !storage_types().count(it[1]->s)) bad("has no storage type");
  if (it[2]->kind != Value::Kind::kStr || it[2]->s.empty() || it[2]->s.size() > 64) bad("has a bad key");
  for (char c : it[2]->s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') bad("key is not alphanumeric");
  }
  if (it[4]->kind != Value::Kind::kInt || it[4]->i < 0) bad("has a bad element count");
  StorageRef ref;
  ref.key = it[2]->s;
  ref.dtype = storage_types().at(it[1]->s);
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

bool has_prefix(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
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

StateDict module_state_dict(const torch::nn::Module& module) {
  StateDict out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& state, const LoadPolicy& policy,
                           const std::string& file_name) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& p : module.named_parameters(true)) targets.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) targets.emplace(b.key(), b.value());
  LoadReport report;
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto& [file_key, tensor] : state) {
    if (!has_prefix(file_key, policy.source_prefix)) continue;
    const std::string key = policy.target_prefix + file_key.substr(policy.source_prefix.size());
    bool ignored = false;
    for (const auto& p : policy.ignore) ignored = ignored || has_prefix(file_key, p);
    if (ignored) {
      report.ignored.push_back(file_key);
      continue;
    }
    auto it = targets.find(key);
    PETSEG_CHECK(it != targets.end(), file_name, ": unexpected key \"", file_key,
                 "\" (the model has no such parameter or buffer)");
    seen.insert(key);
    if (it->second.sizes() != tensor.sizes()) {
      bool skippable = false;
      for (const auto& p : policy.skip_on_shape_mismatch) skippable = skippable || has_prefix(key, p);
      PETSEG_CHECK(skippable, file_name, ": \"", file_key, "\" has shape ", shape_str(tensor.sizes()),
                   ", the model's is ", shape_str(it->second.sizes()));
      report.skipped.push_back(key + ": file " + shape_str(tensor.sizes()) + ", model " +
                               shape_str(it->second.sizes()));
      continue;
    }
    it->second.copy_(tensor);
    ++report.loaded;
  }
  for (const auto& [key, t] : targets) {
    if (seen.count(key)) continue;
    if (policy.partial && !has_prefix(key, policy.target_prefix)) continue;
    PETSEG_FAIL(file_name, ": missing key \"", key.substr(policy.target_prefix.size()), "\" (the model needs it)");
  }
  return report;
}

namespace {

// Pickle protocol 2 writer for torch.save's layout: OrderedDict of _rebuild_tensor_v2(persistent storage, ...).
class PickleWriter {
 public:
  void op(uint8_t c) { out_.push_back(char(c)); }
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void str(const std::string& s) {
    op('X');
    const uint32_t n = uint32_t(s.size());
    raw(&n, 4);
    raw(s.data(), s.size());
  }
  void integer(int64_t v) {
    op(0x8a);
    op(8);
    raw(&v, 8);  // little-endian machines only (checked by the build's targets)
  }
  void global(const char* module, const char* name) {
    op('c');
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
  }
  void ints(at::IntArrayRef v) {
    op('(');
    for (int64_t x : v) integer(x);
    op('t');
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

const char* storage_type_name(at::ScalarType t) {
  for (const auto& [name, type] : storage_types()) {
    if (type == t) return name.c_str() + std::strlen("torch.");
  }
  PETSEG_FAIL("cannot save a tensor of type ", c10::toString(t));
}

}  // namespace

void write_state_dict(const StateDict& state, const std::function<size_t(const void*, size_t)>& sink) {
  std::vector<at::Tensor> storages;
  PickleWriter w;
  w.op(0x80);
  w.op(2);
  w.global("collections", "OrderedDict");
  w.op(')');
  w.op('R');
  w.op('(');
  for (const auto& [key, tensor] : state) {
    const at::Tensor t = tensor.detach().cpu().contiguous();
    const std::string storage_key = std::to_string(storages.size());
    storages.push_back(t);
    w.str(key);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op('(');
    w.op('(');
    w.str("storage");
    w.global("torch", storage_type_name(t.scalar_type()));
    w.str(storage_key);
    w.str("cpu");
    w.integer(t.numel());
    w.op('t');
    w.op('Q');
    w.integer(0);
    w.ints(t.sizes());
    w.ints(t.strides());
    w.op(0x89);
    w.global("collections", "OrderedDict");
    w.op(')');
    w.op('R');
    w.op('t');
    w.op('R');
  }
  w.op('u');
  w.op('.');
  caffe2::serialize::PyTorchStreamWriter writer(sink);
  writer.writeRecord("data.pkl", w.bytes().data(), w.bytes().size());
  for (size_t i = 0; i < storages.size(); ++i) {
    writer.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(), storages[i].nbytes());
  }
  writer.writeEndOfFile();
}

void save_state_dict(const StateDict& state, const std::filesystem::path& path) {
  // Written next to the target and renamed over it: a crash never leaves half a file.
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PETSEG_CHECK(out.good(), "cannot create ", tmp.string());
    bool failed = false;
    write_state_dict(state, [&](const void* data, size_t n) -> size_t {
      out.write(static_cast<const char*>(data), std::streamsize(n));
      failed = failed || !out.good();
      return n;  // never a short write: libtorch's zip writer would end the process; checked below
    });
    out.close();
    if (failed || !out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      PETSEG_FAIL("cannot write ", path.string(), " (disk full or not writable?)");
    }
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace petseg::model
