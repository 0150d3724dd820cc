// The pickle machine of the safe torch.save reader: an explicit stack machine over the closed set of opcodes a
// state dict uses, whose globals resolve to a fixed table (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
// _rebuild_parameter and the torch.*Storage types); anything else is refused before any code could run. Tensors are
// only described here; model/torch_archive.cpp materializes them from checked storages. Also the writer of the same
// subset (protocol 2), for files Python's torch.load reads.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"

namespace petseg::model::pickle {

// The opcodes a state dict uses, by their names in Python's pickletools.
enum Op : uint8_t {
  kProto = 0x80,
  kFrame = 0x95,
  kStop = '.',
  kMark = '(',
  kNone = 'N',
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kBinInt = 'J',
  kLong1 = 0x8a,
  kBinFloat = 'G',
  kBinUnicode = 'X',
  kShortBinUnicode = 0x8c,
  kShortBinString = 'U',
  kBinString = 'T',
  kEmptyDict = '}',
  kEmptyList = ']',
  kEmptyTuple = ')',
  kTuple = 't',
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kBinPut = 'q',
  kLongBinPut = 'r',
  kMemoize = 0x94,
  kBinGet = 'h',
  kLongBinGet = 'j',
  kGlobal = 'c',
  kStackGlobal = 0x93,
  kReduce = 'R',
  kBinPersId = 'Q',
  kBuild = 'b',
  kSetItem = 's',
  kSetItems = 'u',
  kAppend = 'a',
  kAppends = 'e',
};

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

const char* kind_name(Value::Kind k);
ValuePtr make(Value::Kind k);

// The storage globals (torch.FloatStorage, ...) and their element types.
const std::map<std::string, at::ScalarType>& storage_types();
// "FloatStorage" for at::kFloat; an Error for a type torch.save has no storage for.
const char* storage_type_name(at::ScalarType type);

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

// Pickle protocol 2 writer for torch.save's layout: an OrderedDict of _rebuild_tensor_v2(persistent storage, ...).
class Writer {
 public:
  void op(uint8_t c) { out_.push_back(char(c)); }
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void str(const std::string& s) {
    op(kBinUnicode);
    const uint32_t n = uint32_t(s.size());
    raw(&n, 4);
    raw(s.data(), s.size());
  }
  void integer(int64_t v) {
    op(kLong1);
    op(8);
    raw(&v, 8);  // little-endian, as torch.save writes on the machines petseg runs on
  }
  void global(const char* module, const char* name) {
    op(kGlobal);
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
  }
  void ints(at::IntArrayRef v) {
    op(kMark);
    for (int64_t x : v) integer(x);
    op(kTuple);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

}  // namespace petseg::model::pickle
