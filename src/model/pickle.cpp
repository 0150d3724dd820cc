// The pickle machine: the storage-type table, the interpreter's opcode loop and its two callable globals.
#include "model/pickle.h"

#include <cstdio>
#include <cstring>
#include <set>

#include "core/check.h"

namespace petseg::model::pickle {
namespace {

const std::set<std::string>& callable_globals() {
  static const std::set<std::string> names = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                              "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter"};
  return names;
}

}  // namespace

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


const char* storage_type_name(at::ScalarType t) {
  for (const auto& [name, type] : storage_types()) {
    if (type == t) return name.c_str() + std::strlen("torch.");
  }
  PETSEG_FAIL("cannot save a tensor of type ", c10::toString(t));
}


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
      case kProto:
        byte();
        break;  // PROTO
      case kFrame:
        le(8);
        break;  // FRAME
      case kStop:
        return pop();  // STOP
      case kMark:
        stack_.push_back(make(Value::Kind::kMark));
        break;
      case kNone:
        stack_.push_back(make(Value::Kind::kNone));
        break;
      case kNewTrue:
      case kNewFalse: {
        auto v = make(Value::Kind::kBool);
        v->i = op == kNewTrue;
        stack_.push_back(v);
        break;
      }
      case kBinInt1:
        stack_.push_back(integer(byte()));
        break;
      case kBinInt2:
        stack_.push_back(integer(int64_t(le(2))));
        break;
      case kBinInt:
        stack_.push_back(integer(int32_t(uint32_t(le(4)))));
        break;
      case kLong1: {  // LONG1: little-endian two's complement
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
      case kBinFloat: {
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
      case kBinUnicode: {
        const size_t n = le(4);
        const uint8_t* p = take(n);
        stack_.push_back(str(std::string(reinterpret_cast<const char*>(p), n)));
        break;
      }
      case kShortBinUnicode:
      case kShortBinString: {  // SHORT_BINUNICODE, SHORT_BINSTRING
        const size_t n = byte();
        const uint8_t* p = take(n);
        stack_.push_back(str(std::string(reinterpret_cast<const char*>(p), n)));
        break;
      }
      case kBinString: {  // BINSTRING
        const size_t n = le(4);
        const uint8_t* p = take(n);
        stack_.push_back(str(std::string(reinterpret_cast<const char*>(p), n)));
        break;
      }
      case kEmptyDict:
        stack_.push_back(make(Value::Kind::kDict));
        break;
      case kEmptyList:
        stack_.push_back(make(Value::Kind::kList));
        break;
      case kEmptyTuple:
        stack_.push_back(make(Value::Kind::kTuple));
        break;
      case kTuple: {
        auto v = make(Value::Kind::kTuple);
        v->items = pop_to_mark();
        stack_.push_back(v);
        break;
      }
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        auto v = make(Value::Kind::kTuple);
        v->items.resize(op - kTuple1 + 1);
        for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
        stack_.push_back(v);
        break;
      }
      case kBinPut:
        memo_put(byte());
        break;
      case kLongBinPut:
        memo_put(le(4));
        break;
      case kMemoize:
        memo_put(memo_.size());
        break;
      case kBinGet:
        stack_.push_back(memo_get(byte()));
        break;
      case kLongBinGet:
        stack_.push_back(memo_get(le(4)));
        break;
      case kGlobal: {
        const std::string module = line();
        const std::string name = line();
        stack_.push_back(global(module, name));
        break;
      }
      case kStackGlobal: {  // STACK_GLOBAL
        const ValuePtr name = pop(), module = pop();
        if (name->kind != Value::Kind::kStr || module->kind != Value::Kind::kStr) fail("STACK_GLOBAL needs strings");
        stack_.push_back(global(module->s, name->s));
        break;
      }
      case kReduce: {
        const ValuePtr args = pop(), callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case kBinPersId: {
        const ValuePtr pid = pop();
        if (!persistent_load_) fail("persistent id outside a state dict");
        auto v = make(Value::Kind::kStorage);
        v->storage = persistent_load_(*pid);
        stack_.push_back(v);
        break;
      }
      case kBuild: {  // BUILD: only the OrderedDict's _metadata (version info) comes this way; it is not needed.
        const ValuePtr state = pop();
        if (top()->kind != Value::Kind::kDict && top()->kind != Value::Kind::kTensor) {
          fail("BUILD on a " + std::string(kind_name(top()->kind)));
        }
        (void)state;
        break;
      }
      case kSetItem: {
        const ValuePtr value = pop(), key = pop();
        if (top()->kind != Value::Kind::kDict) fail("SETITEM on a non-dict");
        top()->dict.emplace_back(key, value);
        break;
      }
      case kSetItems: {
        auto items = pop_to_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        ValuePtr& d = top();
        if (d->kind != Value::Kind::kDict) fail("SETITEMS on a non-dict");
        for (size_t i = 0; i < items.size(); i += 2) d->dict.emplace_back(items[i], items[i + 1]);
        break;
      }
      case kAppend: {
        const ValuePtr value = pop();
        if (top()->kind != Value::Kind::kList) fail("APPEND on a non-list");
        top()->items.push_back(value);
        break;
      }
      case kAppends: {
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

}  // namespace petseg::model::pickle
