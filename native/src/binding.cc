// The N-API surface: a thin layer. TypeScript (lib/kv/kv_cache.ts) checks arguments; this file only
// unwraps TypedArrays (checking type and length, for memory safety), calls the pool and turns
// saga::Error into the JS SagaError class handed over by lib/native.ts. No per-block calls, no plain
// arrays: every batch is one TypedArray, every output a caller-owned one.
#include <napi.h>

#include <memory>
#include <string>

#include "saga/backend.h"
#include "saga/block_pool.h"
#include "saga/errors.h"
#include "saga/token_hash.h"

namespace {

using saga::BlockId;
using saga::ErrorCode;

Napi::FunctionReference* errorClass = nullptr;  // SagaError, set once by setErrorClass

[[noreturn]] void throwJs(Napi::Env env, ErrorCode code, const std::string& message) {
  if (errorClass != nullptr && !errorClass->IsEmpty()) {
    Napi::Object err = errorClass->New({Napi::String::New(env, message), Napi::String::New(env, saga::errorCodeName(code))});
    throw Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, saga::errorCodeName(code)));
  throw err;
}

// Runs `body`, turning saga::Error into a typed JS error.
template <typename Body>
auto guarded(Napi::Env env, Body body) -> decltype(body()) {
  try {
    return body();
  } catch (const saga::Error& e) {
    throwJs(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throwJs(env, ErrorCode::Internal, "out of host memory");
  }
}

template <typename T>
struct TypeOf;
template <> struct TypeOf<int32_t> { static constexpr napi_typedarray_type value = napi_int32_array; static constexpr const char* name = "Int32Array"; };
template <> struct TypeOf<uint32_t> { static constexpr napi_typedarray_type value = napi_uint32_array; static constexpr const char* name = "Uint32Array"; };
template <> struct TypeOf<uint8_t> { static constexpr napi_typedarray_type value = napi_uint8_array; static constexpr const char* name = "Uint8Array"; };
template <> struct TypeOf<double> { static constexpr napi_typedarray_type value = napi_float64_array; static constexpr const char* name = "Float64Array"; };
template <> struct TypeOf<uint64_t> { static constexpr napi_typedarray_type value = napi_biguint64_array; static constexpr const char* name = "BigUint64Array"; };

template <typename T>
struct View {
  T* data;
  size_t length;
};

// One napi_get_typedarray_info call checks the type and yields data and length (node-addon-api's
// TypedArrayOf would make three calls; this is the hot path of every operation).
template <typename T>
View<T> arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_status status = napi_get_typedarray_info(info.Env(), info[i], &type, &length, &data, nullptr, nullptr);
  if (status != napi_ok || type != TypeOf<T>::value) {
    throwJs(info.Env(), ErrorCode::BadArgument, std::string(name) + " must be a " + TypeOf<T>::name);
  }
  return View<T>{static_cast<T*>(data), length};
}

void needLength(Napi::Env env, size_t got, size_t want, const char* name) {
  if (got < want) throwJs(env, ErrorCode::BadArgument, std::string(name) + " is too short: " + std::to_string(got) + " < " + std::to_string(want));
}

void sameLength(Napi::Env env, size_t a, size_t b, const char* names) {
  if (a != b) throwJs(env, ErrorCode::BadArgument, std::string(names) + " must have the same length");
}

int32_t intOption(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return 0;
  if (!v.IsNumber()) throwJs(o.Env(), ErrorCode::BadArgument, std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int32_t>(d))) throwJs(o.Env(), ErrorCode::BadArgument, std::string(name) + " must be an int32");
  return static_cast<int32_t>(d);
}

template <typename T>
Napi::Value copyOut(Napi::Env env, const std::vector<T>& v) {
  auto a = Napi::TypedArrayOf<T>::New(env, v.size(), TypeOf<T>::value);
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

class PoolWrap : public Napi::ObjectWrap<PoolWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BlockPool",
                       {
                           InstanceAccessor<&PoolWrap::Backend>("backend"),
                           InstanceMethod<&PoolWrap::Lookup>("lookup"),
                           InstanceMethod<&PoolWrap::Allocate>("allocate"),
                           InstanceMethod<&PoolWrap::Commit>("commit"),
                           InstanceMethod<&PoolWrap::Acquire>("acquire"),
                           InstanceMethod<&PoolWrap::Release>("release"),
                           InstanceMethod<&PoolWrap::SetKeys>("setKeys"),
                           InstanceMethod<&PoolWrap::SetSessionKeys>("setSessionKeys"),
                           InstanceMethod<&PoolWrap::Victims>("victims"),
                           InstanceMethod<&PoolWrap::Evict>("evict"),
                           InstanceMethod<&PoolWrap::Offload>("offload"),
                           InstanceMethod<&PoolWrap::Restore>("restore"),
                           InstanceMethod<&PoolWrap::TableAppend>("tableAppend"),
                           InstanceMethod<&PoolWrap::TableTruncate>("tableTruncate"),
                           InstanceMethod<&PoolWrap::TableRead>("tableRead"),
                           InstanceMethod<&PoolWrap::TableAddress>("tableAddress"),
                           InstanceMethod<&PoolWrap::WritePayload>("writePayload"),
                           InstanceMethod<&PoolWrap::ReadPayload>("readPayload"),
                           InstanceMethod<&PoolWrap::Counts>("counts"),
                           InstanceMethod<&PoolWrap::ExportState>("exportState"),
                       });
  }

  explicit PoolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PoolWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throwJs(env, ErrorCode::BadArgument, "BlockPool needs a config object");
    Napi::Object o = info[0].As<Napi::Object>();
    saga::PoolConfig c;
    c.deviceCapacity = intOption(o, "deviceCapacity");
    c.hostCapacity = intOption(o, "hostCapacity");
    c.payloadBytes = intOption(o, "payloadBytes");
    c.tableRows = intOption(o, "tableRows");
    c.tableCols = intOption(o, "tableCols");
    std::string backend = o.Get("backend").IsString() ? o.Get("backend").As<Napi::String>().Utf8Value() : "cpu";
    if (backend != "cpu" && backend != "cuda") throwJs(env, ErrorCode::BadArgument, "backend must be 'cpu' or 'cuda'");
    guarded(env, [&] {
      if (c.deviceCapacity <= 0) throw saga::Error(ErrorCode::BadArgument, "deviceCapacity must be positive");
      if (static_cast<int64_t>(c.deviceCapacity) + c.hostCapacity > INT32_MAX) {
        throw saga::Error(ErrorCode::BadArgument, "deviceCapacity + hostCapacity must fit in int32 ids");
      }
      saga::Backend b = backend == "cuda" ? saga::makeCudaBackend(c) : saga::makeCpuBackend(c);
      pool_ = std::make_unique<saga::BlockPool>(c, std::move(b));
      return 0;
    });
  }

 private:
  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), pool_->backendName()); }

  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    auto hashes = arg<uint64_t>(info, 0, "hashes");
    auto out = arg<int32_t>(info, 1, "outIds");
    needLength(info.Env(), out.length, hashes.length, "outIds");
    size_t n = pool_->lookup(hashes.data, hashes.length, out.data);
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  void Allocate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto hashes = arg<uint64_t>(info, 0, "hashes");
    auto sessions = arg<int32_t>(info, 1, "sessions");
    auto positions = arg<int32_t>(info, 2, "positions");
    auto out = arg<int32_t>(info, 3, "outIds");
    sameLength(env, hashes.length, sessions.length, "hashes and sessions");
    sameLength(env, hashes.length, positions.length, "hashes and positions");
    needLength(env, out.length, hashes.length, "outIds");
    guarded(env, [&] { pool_->allocate(hashes.data, sessions.data, positions.data, hashes.length, out.data); return 0; });
  }

  void Commit(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    auto hashes = arg<uint64_t>(info, 1, "hashes");
    sameLength(info.Env(), ids.length, hashes.length, "ids and hashes");
    guarded(info.Env(), [&] { pool_->commit(ids.data, hashes.data, ids.length); return 0; });
  }

  void Acquire(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    guarded(info.Env(), [&] { pool_->acquire(ids.data, ids.length); return 0; });
  }

  void Release(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    auto keys = arg<double>(info, 1, "keys");
    sameLength(info.Env(), ids.length, keys.length, "ids and keys");
    guarded(info.Env(), [&] { pool_->release(ids.data, keys.data, ids.length); return 0; });
  }

  void SetKeys(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    auto keys = arg<double>(info, 1, "keys");
    sameLength(info.Env(), ids.length, keys.length, "ids and keys");
    guarded(info.Env(), [&] { pool_->setKeys(ids.data, keys.data, ids.length); return 0; });
  }

  Napi::Value SetSessionKeys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto sessions = arg<int32_t>(info, 0, "sessions");
    auto keys = arg<double>(info, 1, "keys");
    auto minPositions = arg<int32_t>(info, 2, "minPositions");
    sameLength(env, sessions.length, keys.length, "sessions and keys");
    sameLength(env, sessions.length, minPositions.length, "sessions and minPositions");
    int64_t n = guarded(env, [&] { return pool_->setSessionKeys(sessions.data, keys.data, minPositions.data, sessions.length); });
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value Victims(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throwJs(env, ErrorCode::BadArgument, "tier must be 0 (device) or 1 (host)");
    int32_t tier = info[0].As<Napi::Number>().Int32Value();
    if (tier != 0 && tier != 1) throwJs(env, ErrorCode::BadArgument, "tier must be 0 (device) or 1 (host)");
    auto out = arg<int32_t>(info, 1, "outIds");
    size_t n = guarded(env, [&] { return pool_->victims(static_cast<saga::Tier>(tier), out.length, out.data); });
    return Napi::Number::New(env, static_cast<double>(n));
  }

  void Evict(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    guarded(info.Env(), [&] { pool_->evict(ids.data, ids.length); return 0; });
  }

  void Offload(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "deviceIds");
    auto out = arg<int32_t>(info, 1, "outHostIds");
    needLength(info.Env(), out.length, ids.length, "outHostIds");
    guarded(info.Env(), [&] { pool_->offload(ids.data, ids.length, out.data); return 0; });
  }

  void Restore(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "hostIds");
    auto out = arg<int32_t>(info, 1, "outDeviceIds");
    needLength(info.Env(), out.length, ids.length, "outDeviceIds");
    guarded(info.Env(), [&] { pool_->restore(ids.data, ids.length, out.data); return 0; });
  }

  void TableAppend(const Napi::CallbackInfo& info) {
    auto rows = arg<int32_t>(info, 0, "rows");
    auto ids = arg<int32_t>(info, 1, "ids");
    sameLength(info.Env(), rows.length, ids.length, "rows and ids");
    guarded(info.Env(), [&] { pool_->tableAppend(rows.data, ids.data, rows.length); return 0; });
  }

  void TableTruncate(const Napi::CallbackInfo& info) {
    auto rows = arg<int32_t>(info, 0, "rows");
    auto lengths = arg<int32_t>(info, 1, "lengths");
    sameLength(info.Env(), rows.length, lengths.length, "rows and lengths");
    guarded(info.Env(), [&] { pool_->tableTruncate(rows.data, lengths.data, rows.length); return 0; });
  }

  void TableRead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto rows = arg<int32_t>(info, 0, "rows");
    auto outIds = arg<int32_t>(info, 1, "outIds");
    auto outLengths = arg<int32_t>(info, 2, "outLengths");
    needLength(env, outIds.length, rows.length * static_cast<size_t>(pool_->config().tableCols), "outIds");
    needLength(env, outLengths.length, rows.length, "outLengths");
    guarded(env, [&] { pool_->tableRead(rows.data, rows.length, outIds.data, outLengths.data); return 0; });
  }

  Napi::Value TableAddress(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(pool_->tableAddress()));
  }

  void WritePayload(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    auto data = arg<uint8_t>(info, 1, "data");
    sameLength(info.Env(), data.length, ids.length * static_cast<size_t>(pool_->config().payloadBytes), "data and ids x payloadBytes");
    guarded(info.Env(), [&] { pool_->writePayload(ids.data, ids.length, data.data); return 0; });
  }

  void ReadPayload(const Napi::CallbackInfo& info) {
    auto ids = arg<int32_t>(info, 0, "ids");
    auto out = arg<uint8_t>(info, 1, "out");
    sameLength(info.Env(), out.length, ids.length * static_cast<size_t>(pool_->config().payloadBytes), "out and ids x payloadBytes");
    guarded(info.Env(), [&] { pool_->readPayload(ids.data, ids.length, out.data); return 0; });
  }

  void Counts(const Napi::CallbackInfo& info) {
    auto out = arg<int32_t>(info, 0, "out");
    needLength(info.Env(), out.length, 5, "out");
    saga::PoolCounts c = pool_->counts();
    int32_t values[5] = {c.deviceFree, c.deviceCached, c.deviceReferenced, c.hostFree, c.hostCached};
    std::copy(values, values + 5, out.data);
  }

  Napi::Value ExportState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    saga::PoolState s = guarded(env, [&] { return pool_->exportState(); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("hash", copyOut(env, s.hash));
    o.Set("refcount", copyOut(env, s.refcount));
    o.Set("state", copyOut(env, s.state));
    o.Set("session", copyOut(env, s.session));
    o.Set("position", copyOut(env, s.position));
    o.Set("key", copyOut(env, s.key));
    o.Set("deviceFreeQueue", copyOut(env, s.deviceFreeQueue));
    o.Set("hostFreeQueue", copyOut(env, s.hostFreeQueue));
    o.Set("tableLengths", copyOut(env, s.tableLengths));
    o.Set("table", copyOut(env, s.table));
    return o;
  }

  std::unique_ptr<saga::BlockPool> pool_;
};

Napi::Value HashTokens(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tokens = arg<uint32_t>(info, 0, "tokens");
  if (!info[1].IsNumber()) throwJs(env, ErrorCode::BadArgument, "blockSize must be a number");
  int64_t blockSize = info[1].As<Napi::Number>().Int64Value();
  if (blockSize < 1) throwJs(env, ErrorCode::BadArgument, "blockSize must be positive");
  if (!info[2].IsBigInt()) throwJs(env, ErrorCode::BadArgument, "parent must be a bigint");
  bool lossless = false;
  uint64_t parent = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throwJs(env, ErrorCode::BadArgument, "parent must fit in 64 bits");
  auto out = arg<uint64_t>(info, 3, "out");
  needLength(env, out.length, tokens.length / static_cast<size_t>(blockSize), "out");
  size_t n = saga::hashTokenBlocks(tokens.data, tokens.length, static_cast<size_t>(blockSize), parent, out.data);
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value ProbeCuda(const Napi::CallbackInfo& info) {
  saga::CudaProbe p = saga::probeCuda();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("compiled", p.compiled);
  o.Set("available", p.available);
  o.Set("devices", p.devices);
  o.Set("deviceName", p.deviceName);
  o.Set("reason", p.reason);
  return o;
}

void SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throwJs(info.Env(), ErrorCode::BadArgument, "setErrorClass needs a constructor");
  if (errorClass == nullptr) errorClass = new Napi::FunctionReference();
  *errorClass = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("BlockPool", PoolWrap::Define(env));
  exports.Set("hashTokens", Napi::Function::New(env, HashTokens, "hashTokens"));
  exports.Set("probeCuda", Napi::Function::New(env, ProbeCuda, "probeCuda"));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  return exports;
}

}  // namespace

NODE_API_MODULE(saga_native, Init)
