// vardefense native addon: calls any ATen operator by schema name through the c10 dispatcher.
// Tensors cross into JS as type-tagged napi externals owning an at::Tensor. Everything else
// (API, models, optimisers, serialisation) lives in TypeScript.
#define NAPI_VERSION 8
#include <node_api.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include <c10/core/CPUAllocator.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct JsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define NCHECK(call)                                                       \
  do {                                                                     \
    if ((call) != napi_ok) throw JsError("N-API call failed: " #call);     \
  } while (0)

// ------------------------------------------------------------------------------------------
// A caching CPU allocator: training allocates the same large blocks every step; glibc hands big
// blocks back to the kernel (mmap/munmap), so every step pays page faults to re-zero them. Freed
// blocks are kept by exact size and reused. Off with VARDEFENSE_CACHING_ALLOCATOR=0.
// ------------------------------------------------------------------------------------------
class CachingCPUAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kAlign = 64;                     // c10's CPU alignment; also the header size
  static constexpr size_t kMinCached = 64 * 1024;          // small blocks go straight back to malloc
  static constexpr size_t kMaxCached = size_t(2) << 30;    // never hoard more than 2 GiB

  // Each block carries its size in a 64-byte header, so the deleter is a plain function of the data
  // pointer (oneDNN frees through raw_deleter()).
  c10::DataPtr allocate(size_t n) const override {
    void* p = take(n < kMinCached ? n : (n + 4095) & ~size_t(4095));
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  size_t cachedBytes() const {
    std::lock_guard<std::mutex> g(mu_);
    return cached_;
  }

  void emptyCache() {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& kv : free_)
      for (void* base : kv.second) std::free(base);
    free_.clear();
    cached_ = 0;
  }

  static CachingCPUAllocator& instance() {
    static CachingCPUAllocator a;
    return a;
  }

 private:
  void* take(size_t size) const {
    void* base = nullptr;
    if (size >= kMinCached) {
      std::lock_guard<std::mutex> g(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        cached_ -= size;
      }
    }
    if (!base) {
      if (posix_memalign(&base, kAlign, size + kAlign) != 0) throw std::bad_alloc();
      *static_cast<size_t*>(base) = size;
    }
    return static_cast<char*>(base) + kAlign;
  }

  static void release(void* p) {
    if (!p) return;
    void* base = static_cast<char*>(p) - kAlign;
    size_t size = *static_cast<size_t*>(base);
    if (size >= kMinCached) {
      auto& a = instance();
      std::lock_guard<std::mutex> g(a.mu_);
      if (a.cached_ + size <= kMaxCached) {
        a.free_[size].push_back(base);
        a.cached_ += size;
        return;
      }
    }
    std::free(base);
  }

  mutable std::mutex mu_;
  mutable std::unordered_map<size_t, std::vector<void*>> free_;
  mutable size_t cached_ = 0;
};

// ------------------------------------------------------------------------------------------
// Tensor handles
// ------------------------------------------------------------------------------------------
struct Handle {
  at::Tensor t;
  int64_t accounted = 0;  // bytes reported to V8 so GC pressure reflects native memory
};

const napi_type_tag kTensorTag = {0x7a3c5e1d9b2f4a60ULL, 0xc4e8a1f2d3b5967eULL};
int64_t gLive = 0, gCreated = 0, gDisposed = 0, gAccounted = 0;

int64_t storageBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  return static_cast<int64_t>(t.storage().nbytes());
}

void release(napi_env env, Handle* h) {
  if (h->accounted) {
    int64_t unused;
    napi_adjust_external_memory(env, -h->accounted, &unused);
    gAccounted -= h->accounted;
    h->accounted = 0;
  }
  if (h->t.defined()) {
    h->t.reset();
    gLive--;
  }
}

void finalizeHandle(napi_env env, void* data, void*) {
  Handle* h = static_cast<Handle*>(data);
  release(env, h);
  delete h;
}

napi_value jsNull(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

napi_value jsUndefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value wrapTensor(napi_env env, at::Tensor t) {
  if (!t.defined()) return jsNull(env);
  int64_t bytes = storageBytes(t);
  Handle* h = new Handle{std::move(t), bytes};
  napi_value v;
  if (napi_create_external(env, h, finalizeHandle, nullptr, &v) != napi_ok) {
    delete h;
    throw JsError("napi_create_external failed");
  }
  napi_type_tag_object(env, v, &kTensorTag);
  if (h->accounted) {
    int64_t unused;
    napi_adjust_external_memory(env, h->accounted, &unused);
    gAccounted += h->accounted;
  }
  gLive++;
  gCreated++;
  return v;
}

napi_valuetype typeOf(napi_env env, napi_value v) {
  napi_valuetype t;
  NCHECK(napi_typeof(env, v, &t));
  return t;
}

Handle* asHandle(napi_env env, napi_value v) {
  if (typeOf(env, v) != napi_external) return nullptr;
  bool ok = false;
  napi_check_object_type_tag(env, v, &kTensorTag, &ok);
  if (!ok) return nullptr;
  void* p = nullptr;
  napi_get_value_external(env, v, &p);
  return static_cast<Handle*>(p);
}

const at::Tensor& tensorOf(napi_env env, napi_value v, const std::string& what) {
  Handle* h = asHandle(env, v);
  if (!h) throw JsError("argument '" + what + "': expected a Tensor");
  if (!h->t.defined()) throw JsError("argument '" + what + "': Tensor was disposed");
  return h->t;
}

// ------------------------------------------------------------------------------------------
// JS values -> IValues, driven by the operator schema
// ------------------------------------------------------------------------------------------
struct CallCtx {
  // tensors passed in, so in-place ops hand back the caller's own handle
  std::vector<std::pair<c10::TensorImpl*, napi_value>> inputs;
};

double numberOf(napi_env env, napi_value v, const std::string& arg) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw JsError("argument '" + arg + "': expected a number");
  return d;
}

bool boolOf(napi_env env, napi_value v, const std::string& arg) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) throw JsError("argument '" + arg + "': expected a boolean");
  return b;
}

int64_t intOf(napi_env env, napi_value v, const std::string& arg) {
  napi_valuetype t = typeOf(env, v);
  if (t == napi_bigint) {
    int64_t r;
    bool lossless;
    NCHECK(napi_get_value_bigint_int64(env, v, &r, &lossless));
    return r;
  }
  if (t == napi_boolean) return boolOf(env, v, arg);
  double d = numberOf(env, v, arg);
  if (std::floor(d) != d || std::fabs(d) > 9.007199254740992e15)
    throw JsError("argument '" + arg + "': expected an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

std::string stringOf(napi_env env, napi_value v, const std::string& arg) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok)
    throw JsError("argument '" + arg + "': expected a string");
  std::string s(len, '\0');
  NCHECK(napi_get_value_string_utf8(env, v, s.data(), len + 1, &len));
  return s;
}

const std::unordered_map<std::string, c10::ScalarType>& dtypeNames() {
  static const std::unordered_map<std::string, c10::ScalarType> m = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
      {"uint8", at::kByte},    {"bool", at::kBool}};
  return m;
}

c10::ScalarType dtypeOf(napi_env env, napi_value v, const std::string& arg) {
  if (typeOf(env, v) == napi_string) {
    auto s = stringOf(env, v, arg);
    auto it = dtypeNames().find(s);
    if (it == dtypeNames().end()) throw JsError("argument '" + arg + "': unknown dtype '" + s + "'");
    return it->second;
  }
  return static_cast<c10::ScalarType>(intOf(env, v, arg));
}

std::string dtypeName(c10::ScalarType st) {
  for (const auto& kv : dtypeNames())
    if (kv.second == st) return kv.first;
  return c10::toString(st);
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t = typeOf(env, v);
  return t == napi_null || t == napi_undefined;
}

bool isArray(napi_env env, napi_value v) {
  bool r = false;
  NCHECK(napi_is_array(env, v, &r));
  return r;
}

// JS numbers carry no int/float split: integral values become int Scalars (integer tensors stay integer).
c10::Scalar scalarOf(napi_env env, napi_value v, const std::string& arg) {
  napi_valuetype t = typeOf(env, v);
  if (t == napi_boolean) return c10::Scalar(boolOf(env, v, arg));
  if (t == napi_bigint) return c10::Scalar(intOf(env, v, arg));
  if (t == napi_external) return tensorOf(env, v, arg).item();
  double d = numberOf(env, v, arg);
  if (std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) return c10::Scalar(static_cast<int64_t>(d));
  return c10::Scalar(d);
}

at::Tensor tensorArg(napi_env env, napi_value v, const std::string& arg, CallCtx& ctx) {
  napi_valuetype t = typeOf(env, v);
  if (t == napi_number || t == napi_boolean) {  // like Python: a number becomes a wrapped 0-dim tensor
    at::Tensor s = c10::scalar_to_tensor(scalarOf(env, v, arg));
    s.unsafeGetTensorImpl()->set_wrapped_number(true);
    return s;
  }
  const at::Tensor& ten = tensorOf(env, v, arg);
  ctx.inputs.emplace_back(ten.unsafeGetTensorImpl(), v);
  return ten;
}

template <class F>
void forEach(napi_env env, napi_value arr, const std::string& arg, F f) {
  if (!isArray(env, arr)) throw JsError("argument '" + arg + "': expected an array");
  uint32_t n;
  NCHECK(napi_get_array_length(env, arr, &n));
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    NCHECK(napi_get_element(env, arr, i, &e));
    f(e);
  }
}

c10::IValue listOf(napi_env env, napi_value v, const c10::TypePtr& elem, c10::optional<int32_t> N,
                   const std::string& arg, CallCtx& ctx) {
  switch (elem->kind()) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      c10::List<int64_t> l;
      if (!isArray(env, v)) {  // int[2] given as a bare int expands, as in Python
        int64_t x = intOf(env, v, arg);
        for (int32_t i = 0; i < (N ? *N : 1); i++) l.push_back(x);
      } else {
        forEach(env, v, arg, [&](napi_value e) { l.push_back(intOf(env, e, arg)); });
      }
      return l;
    }
    case c10::TypeKind::FloatType: {
      c10::List<double> l;
      forEach(env, v, arg, [&](napi_value e) { l.push_back(numberOf(env, e, arg)); });
      return l;
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> l;
      forEach(env, v, arg, [&](napi_value e) { l.push_back(boolOf(env, e, arg)); });
      return l;
    }
    case c10::TypeKind::TensorType: {
      c10::List<at::Tensor> l;
      forEach(env, v, arg, [&](napi_value e) { l.push_back(tensorArg(env, e, arg, ctx)); });
      return l;
    }
    case c10::TypeKind::OptionalType: {  // Tensor?[] (aten::index, index_put_)
      if (elem->castRaw<c10::OptionalType>()->getElementType()->kind() != c10::TypeKind::TensorType) break;
      c10::List<c10::optional<at::Tensor>> l;
      forEach(env, v, arg, [&](napi_value e) {
        if (isNullish(env, e))
          l.push_back(c10::nullopt);
        else
          l.push_back(tensorArg(env, e, arg, ctx));
      });
      return l;
    }
    default:
      break;
  }
  throw JsError("argument '" + arg + "': unsupported list element type " + elem->str());
}

c10::IValue toIValue(napi_env env, napi_value v, const c10::TypePtr& type, c10::optional<int32_t> N,
                     const std::string& arg, CallCtx& ctx) {
  switch (type->kind()) {
    case c10::TypeKind::OptionalType:
      if (isNullish(env, v)) return c10::IValue();
      return toIValue(env, v, type->castRaw<c10::OptionalType>()->getElementType(), N, arg, ctx);
    case c10::TypeKind::TensorType:
      return tensorArg(env, v, arg, ctx);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::LayoutType:        // Layout and MemoryFormat travel as ints
    case c10::TypeKind::MemoryFormatType:
      return c10::IValue(intOf(env, v, arg));
    case c10::TypeKind::ScalarTypeType:
      return c10::IValue(static_cast<int64_t>(dtypeOf(env, v, arg)));
    case c10::TypeKind::FloatType:
      return c10::IValue(numberOf(env, v, arg));
    case c10::TypeKind::BoolType:
      return c10::IValue(boolOf(env, v, arg));
    case c10::TypeKind::NumberType:
      return c10::IValue(scalarOf(env, v, arg));
    case c10::TypeKind::StringType:
      return c10::IValue(stringOf(env, v, arg));
    case c10::TypeKind::DeviceObjType:
      return c10::IValue(c10::Device(stringOf(env, v, arg)));
    case c10::TypeKind::ListType:
      return listOf(env, v, type->castRaw<c10::ListType>()->getElementType(), N, arg, ctx);
    default:
      break;
  }
  throw JsError("argument '" + arg + "': unsupported schema type " + type->str());
}

// ------------------------------------------------------------------------------------------
// IValues -> JS values
// ------------------------------------------------------------------------------------------
napi_value fromIValue(napi_env env, const c10::IValue& iv, const CallCtx* ctx, bool aliasWrite) {
  napi_value r;
  if (iv.isTensor()) {
    const at::Tensor& t = iv.toTensor();
    if (aliasWrite && ctx)
      for (const auto& p : ctx->inputs)
        if (p.first == t.unsafeGetTensorImpl()) return p.second;
    return wrapTensor(env, t);
  }
  if (iv.isNone()) return jsNull(env);
  if (iv.isInt()) {
    NCHECK(napi_create_double(env, static_cast<double>(iv.toInt()), &r));
    return r;
  }
  if (iv.isDouble()) {
    NCHECK(napi_create_double(env, iv.toDouble(), &r));
    return r;
  }
  if (iv.isBool()) {
    NCHECK(napi_get_boolean(env, iv.toBool(), &r));
    return r;
  }
  if (iv.isString()) {
    const auto& s = iv.toStringRef();
    NCHECK(napi_create_string_utf8(env, s.data(), s.size(), &r));
    return r;
  }
  if (iv.isScalar()) {  // e.g. aten::item
    auto s = iv.toScalar();
    if (s.isBoolean()) {
      NCHECK(napi_get_boolean(env, s.toBool(), &r));
    } else {
      NCHECK(napi_create_double(env, s.toDouble(), &r));
    }
    return r;
  }
  if (iv.isTuple() || iv.isList()) {
    std::vector<c10::IValue> items;
    if (iv.isTuple()) {
      for (const auto& e : iv.toTupleRef().elements()) items.push_back(e);
    } else {
      for (const auto& e : iv.toListRef()) items.push_back(e);
    }
    NCHECK(napi_create_array_with_length(env, items.size(), &r));
    for (size_t i = 0; i < items.size(); i++)
      NCHECK(napi_set_element(env, r, i, fromIValue(env, items[i], ctx, aliasWrite)));
    return r;
  }
  throw JsError(std::string("unsupported return type: ") + iv.tagKind());
}

// ------------------------------------------------------------------------------------------
// Operator cache and the boxed call
// ------------------------------------------------------------------------------------------
struct OpEntry {
  c10::OperatorHandle op;
  std::string name;
  std::vector<bool> retAliasWrite;
};
std::vector<OpEntry> gOps;
std::unordered_map<std::string, int32_t> gOpIndex;

int32_t resolveOp(const std::string& name, const std::string& overload) {
  std::string key = name + "." + overload;
  auto it = gOpIndex.find(key);
  if (it != gOpIndex.end()) return it->second;
  auto handle = c10::Dispatcher::singleton().findOp(c10::OperatorName(name, overload));
  if (!handle) {
    std::string known;
    for (const auto& on : c10::Dispatcher::singleton().getAllOpNames())
      if (on.name == name) known += (known.empty() ? "" : ", ") + std::string(on.overload_name.empty() ? "<default>" : on.overload_name);
    throw JsError("unknown operator " + name + (overload.empty() ? "" : "." + overload) +
                  (known.empty() ? "" : " (overloads: " + known + ")"));
  }
  OpEntry e{*handle, overload.empty() ? name : key, {}};
  for (const auto& r : handle->schema().returns()) e.retAliasWrite.push_back(r.alias_info() && r.alias_info()->isWrite());
  gOps.push_back(std::move(e));
  int32_t id = static_cast<int32_t>(gOps.size() - 1);
  gOpIndex.emplace(key, id);
  return id;
}

std::string describeArgs(const std::vector<c10::Argument>& sargs, const torch::jit::Stack& stack) {
  std::ostringstream os;
  for (size_t i = 0; i < stack.size() && i < sargs.size(); i++) {
    const auto& v = stack[i];
    if (v.isTensor()) {
      const auto& t = v.toTensor();
      os << (os.tellp() > 0 ? ", " : "") << sargs[i].name() << "=" << (t.defined() ? dtypeName(t.scalar_type()) : "undefined")
         << t.sizes();
    } else if (v.isTensorList()) {
      os << (os.tellp() > 0 ? ", " : "") << sargs[i].name() << "=[";
      bool first = true;
      for (const auto& t : v.toTensorVector()) {
        os << (first ? "" : ", ") << t.sizes();
        first = false;
      }
      os << "]";
    }
  }
  return os.str();
}

napi_value invoke(napi_env env, OpEntry& e, const napi_value* argv, size_t argc) {
  const auto& sargs = e.op.schema().arguments();
  napi_value kwargs = nullptr;  // a trailing plain object holds keyword arguments by schema name
  if (argc > 0 && typeOf(env, argv[argc - 1]) == napi_object && !isArray(env, argv[argc - 1])) {
    kwargs = argv[argc - 1];
    argc--;
  }
  if (argc > sargs.size())
    throw JsError(e.name + ": too many arguments (" + std::to_string(argc) + " given, schema takes " +
                  std::to_string(sargs.size()) + ")");
  CallCtx ctx;
  torch::jit::Stack stack;
  stack.reserve(sargs.size());
  for (size_t i = 0; i < sargs.size(); i++) {
    const auto& a = sargs[i];
    napi_value v = i < argc ? argv[i] : nullptr;
    if (kwargs && (v == nullptr || typeOf(env, v) == napi_undefined)) {
      bool has = false;
      NCHECK(napi_has_named_property(env, kwargs, a.name().c_str(), &has));
      if (has) NCHECK(napi_get_named_property(env, kwargs, a.name().c_str(), &v));
    }
    if (v == nullptr || typeOf(env, v) == napi_undefined) {
      if (a.default_value()) {
        stack.push_back(*a.default_value());
        continue;
      }
      if (a.real_type()->kind() == c10::TypeKind::OptionalType) {
        stack.emplace_back();
        continue;
      }
      throw JsError(e.name + ": missing required argument '" + a.name() + "'");
    }
    try {
      stack.push_back(toIValue(env, v, a.real_type(), a.N(), a.name(), ctx));
    } catch (const JsError& ex) {
      throw JsError(e.name + ": " + ex.what());
    }
  }
  std::string argDesc;
  try {
    e.op.callBoxed(&stack);
  } catch (const c10::Error& ex) {
    throw JsError(e.name + "(" + describeArgs(sargs, stack) + "): " + ex.what_without_backtrace());
  } catch (const std::exception& ex) {
    throw JsError(e.name + "(" + describeArgs(sargs, stack) + "): " + ex.what());
  }
  size_t nret = e.retAliasWrite.size();
  if (nret == 0) return jsUndefined(env);
  if (nret == 1) return fromIValue(env, stack[0], &ctx, e.retAliasWrite[0]);
  napi_value arr;
  NCHECK(napi_create_array_with_length(env, nret, &arr));
  for (size_t i = 0; i < nret; i++)
    NCHECK(napi_set_element(env, arr, i, fromIValue(env, stack[i], &ctx, e.retAliasWrite[i])));
  return arr;
}

// ------------------------------------------------------------------------------------------
// Exported functions. Every entry point converts C++ exceptions into JS Errors.
// ------------------------------------------------------------------------------------------
template <size_t MaxArgs>
struct Args {
  napi_value argv[MaxArgs];
  size_t argc = MaxArgs;
  napi_value self = nullptr;
  Args(napi_env env, napi_callback_info info) { NCHECK(napi_get_cb_info(env, info, &argc, argv, &self, nullptr)); }
  napi_value operator[](size_t i) const { return i < argc ? argv[i] : nullptr; }
};

template <class F>
napi_value guarded(napi_env env, F f) {
  try {
    return f();
  } catch (const c10::Error& ex) {
    napi_throw_error(env, nullptr, ex.what_without_backtrace());
  } catch (const std::exception& ex) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, nullptr, ex.what());
  }
  return nullptr;
}

#define ENTRY(fn) napi_value fn(napi_env env, napi_callback_info info) { return guarded(env, [&]() -> napi_value
#define END_ENTRY ); }

napi_value num(napi_env env, double d) {
  napi_value r;
  NCHECK(napi_create_double(env, d, &r));
  return r;
}

napi_value boolean(napi_env env, bool b) {
  napi_value r;
  NCHECK(napi_get_boolean(env, b, &r));
  return r;
}

napi_value str(napi_env env, const std::string& s) {
  napi_value r;
  NCHECK(napi_create_string_utf8(env, s.data(), s.size(), &r));
  return r;
}

const at::Tensor& argTensor(napi_env env, napi_value v, const char* name) {
  if (!v) throw JsError(std::string("missing argument '") + name + "'");
  return tensorOf(env, v, name);
}

std::vector<int64_t> shapeOf(napi_env env, napi_value v, const std::string& arg) {
  std::vector<int64_t> shape;
  forEach(env, v, arg, [&](napi_value e) {
    int64_t d = intOf(env, e, arg);
    if (d < 0) throw JsError("argument '" + arg + "': negative dimension " + std::to_string(d));
    shape.push_back(d);
  });
  return shape;
}

// opId(name, overload) -> number
ENTRY(OpId) {
  Args<2> a(env, info);
  return num(env, resolveOp(stringOf(env, a[0], "name"), a[1] ? stringOf(env, a[1], "overload") : ""));
} END_ENTRY

// call(id, ...args)
ENTRY(Call) {
  Args<40> a(env, info);
  if (a.argc > 40) throw JsError("call: too many arguments");
  int32_t id;
  NCHECK(napi_get_value_int32(env, a[0], &id));
  if (id < 0 || static_cast<size_t>(id) >= gOps.size()) throw JsError("call: bad operator id");
  return invoke(env, gOps[id], a.argv + 1, a.argc - 1);
} END_ENTRY

ENTRY(Schema) {
  Args<1> a(env, info);
  int32_t id;
  NCHECK(napi_get_value_int32(env, a[0], &id));
  if (id < 0 || static_cast<size_t>(id) >= gOps.size()) throw JsError("schema: bad operator id");
  std::ostringstream os;
  os << gOps[id].op.schema();
  return str(env, os.str());
} END_ENTRY

ENTRY(Overloads) {
  Args<1> a(env, info);
  std::string name = stringOf(env, a[0], "name");
  napi_value arr;
  NCHECK(napi_create_array(env, &arr));
  uint32_t k = 0;
  for (const auto& on : c10::Dispatcher::singleton().getAllOpNames())
    if (on.name == name) NCHECK(napi_set_element(env, arr, k++, str(env, on.overload_name)));
  return arr;
} END_ENTRY

ENTRY(Dispose) {
  Args<1> a(env, info);
  Handle* h = a[0] ? asHandle(env, a[0]) : nullptr;
  if (!h) throw JsError("dispose: not a Tensor");
  if (h->t.defined()) {
    release(env, h);
    gDisposed++;
  }
  return jsUndefined(env);
} END_ENTRY

ENTRY(IsDisposed) {
  Args<1> a(env, info);
  Handle* h = a[0] ? asHandle(env, a[0]) : nullptr;
  return boolean(env, !h || !h->t.defined());
} END_ENTRY

ENTRY(IsTensor) {
  Args<1> a(env, info);
  return boolean(env, a[0] && asHandle(env, a[0]) != nullptr);
} END_ENTRY

// info(t) -> [dtype, ...shape] in one crossing
ENTRY(Shape) {
  Args<1> a(env, info);
  const auto& t = argTensor(env, a[0], "tensor");
  napi_value arr;
  NCHECK(napi_create_array_with_length(env, t.dim(), &arr));
  for (int64_t i = 0; i < t.dim(); i++) NCHECK(napi_set_element(env, arr, i, num(env, static_cast<double>(t.size(i)))));
  return arr;
} END_ENTRY

ENTRY(Dtype) {
  Args<1> a(env, info);
  return str(env, dtypeName(argTensor(env, a[0], "tensor").scalar_type()));
} END_ENTRY

// isContiguous(t, memoryFormat?) -> whether t is contiguous in that layout (0 contiguous, 2 channels-last, 3 channels-last 3d)
ENTRY(IsContiguous) {
  Args<2> a(env, info);
  const auto& t = argTensor(env, a[0], "tensor");
  int64_t mf = a[1] && !isNullish(env, a[1]) ? intOf(env, a[1], "memoryFormat") : 0;
  if (mf != 0 && mf != 2 && mf != 3) throw JsError("isContiguous: memoryFormat must be 0 (contiguous), 2 (channels-last) or 3 (channels-last 3d)");
  return boolean(env, t.is_contiguous(static_cast<c10::MemoryFormat>(mf)));
} END_ENTRY

// suggestMemoryFormat(t) -> the layout libtorch's kernels take t to be in (Tensor::suggest_memory_format:
// by the strides, so a [N, 1, H, W] tensor made channels-last is channels-last though it is contiguous too)
ENTRY(SuggestMemoryFormat) {
  Args<1> a(env, info);
  return num(env, static_cast<double>(argTensor(env, a[0], "tensor").suggest_memory_format()));
} END_ENTRY

ENTRY(Device) {
  Args<1> a(env, info);
  return str(env, argTensor(env, a[0], "tensor").device().str());
} END_ENTRY

// fromBytes(uint8Array view, dtype, shape) -> new tensor holding a copy of the bytes
ENTRY(FromBytes) {
  Args<3> a(env, info);
  bool isTyped = false;
  NCHECK(napi_is_typedarray(env, a[0], &isTyped));
  if (!isTyped) throw JsError("fromBytes: argument 'data' must be a typed array");
  napi_typedarray_type ty;
  size_t length, offset;
  void* data;
  napi_value ab;
  NCHECK(napi_get_typedarray_info(env, a[0], &ty, &length, &data, &ab, &offset));
  size_t bytes = length;
  switch (ty) {
    case napi_int16_array: case napi_uint16_array: bytes *= 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: bytes *= 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: bytes *= 8; break;
    default: break;
  }
  auto st = dtypeOf(env, a[1], "dtype");
  auto shape = shapeOf(env, a[2], "shape");
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  size_t need = static_cast<size_t>(numel) * c10::elementSize(st);
  if (need != bytes)
    throw JsError("fromBytes: " + std::to_string(bytes) + " bytes given, shape needs " + std::to_string(need) + " bytes of " +
                  dtypeName(st));
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(st));
  if (need) std::memcpy(t.data_ptr(), data, need);
  return wrapTensor(env, t);
} END_ENTRY

void finalizeView(napi_env, void*, void* hint) { delete static_cast<at::Tensor*>(hint); }

// bytes(t, copy) -> ArrayBuffer with the contiguous CPU data; copy=false shares the tensor's memory
ENTRY(Bytes) {
  Args<2> a(env, info);
  at::Tensor t = argTensor(env, a[0], "tensor").detach();
  bool copy = a[1] ? boolOf(env, a[1], "copy") : true;
  if (t.device().type() != c10::DeviceType::CPU) t = t.cpu();
  napi_value ab;
  if (!copy) {
    if (!t.is_contiguous() || t.storage_offset() != 0 || t.nbytes() == 0)
      throw JsError("bytes: a shared view needs a contiguous tensor at offset 0; use copy=true");
    auto* keep = new at::Tensor(t);
    if (napi_create_external_arraybuffer(env, t.data_ptr(), t.nbytes(), finalizeView, keep, &ab) != napi_ok) {
      delete keep;
      throw JsError("bytes: external buffers are not allowed in this runtime; use copy=true");
    }
    return ab;
  }
  t = t.contiguous();
  void* dst;
  NCHECK(napi_create_arraybuffer(env, t.nbytes(), &dst, &ab));
  if (t.nbytes()) std::memcpy(dst, t.data_ptr(), t.nbytes());
  return ab;
} END_ENTRY

// CPU autocast (torch.autocast('cpu')): thread-local in libtorch; Node calls the addon on its main
// thread only. The cast cache is off while autocast is on: PyTorch clears it when the outermost
// autocast context exits, but a TypeScript caller may keep autocast on across optimiser steps, and a
// cached low-precision copy of a parameter updated in place would then be stale.
struct AutocastOff {
  bool was = at::autocast::is_cpu_enabled();
  AutocastOff() { if (was) at::autocast::set_cpu_enabled(false); }
  ~AutocastOff() { if (was) at::autocast::set_cpu_enabled(true); }
};

napi_value autocastState(napi_env env) {
  napi_value o;
  NCHECK(napi_create_object(env, &o));
  NCHECK(napi_set_named_property(env, o, "enabled", boolean(env, at::autocast::is_cpu_enabled())));
  NCHECK(napi_set_named_property(env, o, "dtype", str(env, dtypeName(at::autocast::get_autocast_cpu_dtype()))));
  NCHECK(napi_set_named_property(env, o, "cache", boolean(env, at::autocast::is_autocast_cache_enabled())));
  return o;
}

// setAutocast(enabled, dtype?) -> the previous {enabled, dtype, cache}
ENTRY(SetAutocast) {
  Args<2> a(env, info);
  napi_value prev = autocastState(env);
  bool on = boolOf(env, a[0], "enabled");
  if (a[1] && !isNullish(env, a[1])) {
    auto st = dtypeOf(env, a[1], "dtype");
    if (st != at::kBFloat16 && st != at::kHalf) throw JsError("setAutocast: dtype must be bfloat16 or float16, got " + dtypeName(st));
    at::autocast::set_autocast_cpu_dtype(st);
  }
  at::autocast::clear_cache();
  at::autocast::set_autocast_cache_enabled(!on);
  at::autocast::set_cpu_enabled(on);
  return prev;
} END_ENTRY

ENTRY(GetAutocast) { return autocastState(env); } END_ENTRY

// backward(loss, grad?, retainGraph?)
ENTRY(Backward) {
  Args<3> a(env, info);
  std::vector<at::Tensor> grads;
  if (a[1] && !isNullish(env, a[1])) grads.push_back(argTensor(env, a[1], "grad"));
  bool retain = a[2] && !isNullish(env, a[2]) && boolOf(env, a[2], "retainGraph");
  // On CPU the autograd engine runs the backward pass on this thread with the thread-local state of
  // this call, autocast included; PyTorch's recipe runs backward outside autocast (each backward op
  // then takes the dtypes its forward op saw), so autocast is off for the duration of the pass.
  AutocastOff off;
  torch::autograd::backward({argTensor(env, a[0], "tensor")}, grads, retain, false);
  return jsUndefined(env);
} END_ENTRY

ENTRY(Grad) {
  Args<1> a(env, info);
  return wrapTensor(env, argTensor(env, a[0], "tensor").grad());
} END_ENTRY

// setGrad(t, g | null)
ENTRY(SetGrad) {
  Args<2> a(env, info);
  at::Tensor t = argTensor(env, a[0], "tensor");
  if (!a[1] || isNullish(env, a[1]))
    t.mutable_grad().reset();
  else
    t.mutable_grad() = argTensor(env, a[1], "grad");
  return jsUndefined(env);
} END_ENTRY

ENTRY(RequiresGrad) {
  Args<1> a(env, info);
  return boolean(env, argTensor(env, a[0], "tensor").requires_grad());
} END_ENTRY

ENTRY(SetRequiresGrad) {
  Args<2> a(env, info);
  at::Tensor t = argTensor(env, a[0], "tensor");
  t.set_requires_grad(boolOf(env, a[1], "requiresGrad"));
  return jsUndefined(env);
} END_ENTRY

ENTRY(IsLeaf) {
  Args<1> a(env, info);
  return boolean(env, argTensor(env, a[0], "tensor").is_leaf());
} END_ENTRY

// setGradEnabled(bool) -> previous
ENTRY(SetGradEnabled) {
  Args<1> a(env, info);
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(boolOf(env, a[0], "enabled"));
  return boolean(env, prev);
} END_ENTRY

ENTRY(IsGradEnabled) { return boolean(env, c10::GradMode::is_enabled()); } END_ENTRY

// inferenceMode(fn): runs fn under c10::InferenceMode (no autograd bookkeeping at all)
ENTRY(InferenceMode) {
  Args<1> a(env, info);
  c10::InferenceMode guard;
  napi_value result;
  napi_status s = napi_call_function(env, a.self ? a.self : jsUndefined(env), a[0], 0, nullptr, &result);
  if (s != napi_ok) throw JsError("inferenceMode: callback threw");  // the JS exception stays pending
  return result;
} END_ENTRY

ENTRY(ManualSeed) {
  Args<1> a(env, info);
  at::manual_seed(static_cast<uint64_t>(intOf(env, a[0], "seed")));
  return jsUndefined(env);
} END_ENTRY

ENTRY(SetDeterministic) {
  Args<1> a(env, info);
  at::globalContext().setDeterministicAlgorithms(boolOf(env, a[0], "enabled"), false);
  return jsUndefined(env);
} END_ENTRY

// setMkldnnEnabled(bool) -> previous: whether convolutions may use oneDNN (torch.backends.mkldnn.enabled)
ENTRY(SetMkldnnEnabled) {
  Args<1> a(env, info);
  bool prev = at::globalContext().userEnabledMkldnn();
  at::globalContext().setUserEnabledMkldnn(boolOf(env, a[0], "enabled"));
  return boolean(env, prev);
} END_ENTRY

ENTRY(SetNumThreads) {
  Args<1> a(env, info);
  int64_t n = intOf(env, a[0], "threads");
  if (n < 1) throw JsError("setNumThreads: argument 'threads' must be >= 1");
  at::set_num_threads(static_cast<int>(n));
  return jsUndefined(env);
} END_ENTRY

ENTRY(GetNumThreads) { return num(env, at::get_num_threads()); } END_ENTRY

ENTRY(Stats) {
  napi_value o;
  NCHECK(napi_create_object(env, &o));
  NCHECK(napi_set_named_property(env, o, "live", num(env, static_cast<double>(gLive))));
  NCHECK(napi_set_named_property(env, o, "created", num(env, static_cast<double>(gCreated))));
  NCHECK(napi_set_named_property(env, o, "disposed", num(env, static_cast<double>(gDisposed))));
  NCHECK(napi_set_named_property(env, o, "accountedBytes", num(env, static_cast<double>(gAccounted))));
  NCHECK(napi_set_named_property(env, o, "operators", num(env, static_cast<double>(gOps.size()))));
  return o;
} END_ENTRY

ENTRY(AllocatorStats) {
  napi_value o;
  NCHECK(napi_create_object(env, &o));
  NCHECK(napi_set_named_property(env, o, "caching", boolean(env, c10::GetCPUAllocator() == &CachingCPUAllocator::instance())));
  NCHECK(napi_set_named_property(env, o, "cachedBytes", num(env, static_cast<double>(CachingCPUAllocator::instance().cachedBytes()))));
  return o;
} END_ENTRY

ENTRY(EmptyCache) {
  CachingCPUAllocator::instance().emptyCache();
  return jsUndefined(env);
} END_ENTRY

ENTRY(BuildInfo) {
  napi_value o;
  NCHECK(napi_create_object(env, &o));
  NCHECK(napi_set_named_property(env, o, "torch", str(env, TORCH_VERSION)));
  NCHECK(napi_set_named_property(env, o, "config", str(env, at::show_config())));
  NCHECK(napi_set_named_property(env, o, "parallel", str(env, at::get_parallel_info())));
  NCHECK(napi_set_named_property(env, o, "cuda", boolean(env, at::hasCUDA())));
  NCHECK(napi_set_named_property(env, o, "mkldnn", boolean(env, at::hasMKLDNN())));
  return o;
} END_ENTRY

napi_value Init(napi_env env, napi_value exports) {
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  const Fn fns[] = {
      {"opId", OpId},           {"call", Call},
      {"schema", Schema},       {"overloads", Overloads},
      {"dispose", Dispose},     {"isDisposed", IsDisposed},
      {"isTensor", IsTensor},   {"shape", Shape},
      {"dtype", Dtype},         {"device", Device},
      {"fromBytes", FromBytes}, {"bytes", Bytes},
      {"backward", Backward},   {"grad", Grad},
      {"setGrad", SetGrad},     {"requiresGrad", RequiresGrad},
      {"setRequiresGrad", SetRequiresGrad}, {"isLeaf", IsLeaf},
      {"setGradEnabled", SetGradEnabled},   {"isGradEnabled", IsGradEnabled},
      {"inferenceMode", InferenceMode},     {"manualSeed", ManualSeed},
      {"setDeterministic", SetDeterministic}, {"setNumThreads", SetNumThreads},
      {"getNumThreads", GetNumThreads},     {"stats", Stats},
      {"buildInfo", BuildInfo},             {"allocatorStats", AllocatorStats},
      {"emptyCache", EmptyCache},           {"setMkldnnEnabled", SetMkldnnEnabled},
      {"setAutocast", SetAutocast},         {"getAutocast", GetAutocast},
      {"isContiguous", IsContiguous},       {"suggestMemoryFormat", SuggestMemoryFormat},
  };
  const char* caching = std::getenv("VARDEFENSE_CACHING_ALLOCATOR");
  if (!caching || std::string(caching) != "0") c10::SetCPUAllocator(&CachingCPUAllocator::instance(), /*priority=*/1);
  for (const auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
