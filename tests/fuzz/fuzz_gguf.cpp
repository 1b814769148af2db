// tests/fuzz/fuzz_gguf.cpp: libFuzzer target for the GGUF reader: any byte string must give either a
// validated file whose every view stays inside the input, or a clean error; never a crash, a hang, undefined
// behaviour or a huge allocation. Every byte the reader hands out is read, so AddressSanitizer sees a view
// that strays outside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf.h"

namespace {

// Bytes of one element of a fixed-size array type.
size_t element_size(pginfer::GgufValueType t) {
  using VT = pginfer::GgufValueType;
  switch (t) {
    case VT::U8: case VT::I8: case VT::BOOL: return 1;
    case VT::U16: case VT::I16: return 2;
    case VT::U32: case VT::I32: case VT::F32: return 4;
    case VT::U64: case VT::I64: case VT::F64: return 8;
    default: return 0;
  }
}

uint64_t sum(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += b[i];
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so that a read one past the end is an AddressSanitizer report.
  std::vector<uint8_t> copy(data, data + size);
  std::unique_ptr<pginfer::GgufFile> file;
  const pginfer::Status st = pginfer::GgufFile::open_memory(copy.data(), copy.size(), "fuzz.gguf", &file);
  if (!st.ok()) {
    // A refusal is a prefixed message, never a success code without a file.
    if (st.message().rfind("\"fuzz.gguf\": ", 0) != 0 || file != nullptr) std::abort();
    return 0;
  }
  if (file == nullptr || (file->version() != 2 && file->version() != 3)) std::abort();
  const uint64_t align = file->alignment();
  if (align == 0 || (align & (align - 1)) != 0) std::abort();

  volatile uint64_t sink = 0;
  for (const std::string& key : file->keys()) {
    const pginfer::GgufValue* v = file->find(key);
    if (v == nullptr) std::abort();
    sink = sink + sum(v->str.data(), v->str.size()) + v->array_count;
    for (std::string_view s : v->array_strings) sink = sink + sum(s.data(), s.size());
    if (v->type == pginfer::GgufValueType::ARRAY) {
      if (v->array_type == pginfer::GgufValueType::STRING) {
        if (v->array_strings.size() != v->array_count) std::abort();
      } else if (v->array_count > 0) {
        sink = sink + sum(v->array_data, v->array_count * element_size(v->array_type));
      }
    }
    // Every getter on every key: each either converts or refuses, with a message when asked.
    std::string s;
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    pginfer::Status err;
    sink = sink + file->get_string(key, &s, &err) + s.size();
    sink = sink + file->get_u64(key, &u, &err) + u;
    sink = sink + file->get_i64(key, &i, &err) + (uint64_t)i;
    sink = sink + file->get_f64(key, &d, &err) + (d != d);
    sink = sink + file->get_bool(key, &b, &err) + b;
    sink = sink + err.message().size();
  }
  uint64_t end_max = 0;
  for (const pginfer::GgufTensor& t : file->tensors()) {
    if (file->tensor(t.name) != &t) std::abort();
    if (t.n_dims < 1 || t.n_dims > 4 || t.n_elements() <= 0 || t.n_rows() <= 0 || t.offset % align != 0) std::abort();
    const pginfer::TypeTraits* tr = pginfer::type_traits(t.type);
    if (tr == nullptr || t.ne[0] % tr->block_elems != 0) std::abort();
    if (pginfer::row_bytes(t.type, t.ne[0]) * (size_t)t.n_rows() != t.n_bytes) std::abort();
    if (t.data < copy.data() || (size_t)(t.data - copy.data()) + t.n_bytes > copy.size()) std::abort();
    if ((size_t)(t.data - copy.data()) % align != 0) std::abort();
    sink = sink + sum(t.data, t.n_bytes);
    end_max = t.offset + t.n_bytes > end_max ? t.offset + t.n_bytes : end_max;
  }
  sink = sink + end_max;
  return 0;
}
