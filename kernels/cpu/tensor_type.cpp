// kernels/cpu/tensor_type.cpp: the table of supported tensor types (GGML's numbers, names and block sizes),
// and the lookups over it.
#include "kernels/cpu/tensor_type.h"

#include <cctype>
#include <cstring>

namespace pginfer {

namespace {

struct TypeRow {
  TensorType type;
  TypeTraits traits;
  bool weight;  // may store model weights (Q8_K is for activations only)
};

constexpr TypeRow kTypes[] = {
    {TensorType::F32, {"f32", 1, 4}, true},
    {TensorType::F16, {"f16", 1, 2}, true},
    {TensorType::BF16, {"bf16", 1, 2}, true},
    {TensorType::Q4_0, {"q4_0", kQK4_0, sizeof(BlockQ4_0)}, true},
    {TensorType::Q8_0, {"q8_0", kQK8_0, sizeof(BlockQ8_0)}, true},
    {TensorType::Q4_K, {"q4_K", kQK_K, sizeof(BlockQ4_K)}, true},
    {TensorType::Q5_K, {"q5_K", kQK_K, sizeof(BlockQ5_K)}, true},
    {TensorType::Q6_K, {"q6_K", kQK_K, sizeof(BlockQ6_K)}, true},
    {TensorType::Q8_K, {"q8_K", kQK_K, sizeof(BlockQ8_K)}, false},
};

}  // namespace

const TypeTraits* type_traits(TensorType type) { return type_traits_raw((uint32_t)type); }

const TypeTraits* type_traits_raw(uint32_t raw_type) {
  for (const TypeRow& row : kTypes) {
    if ((uint32_t)row.type == raw_type) return &row.traits;
  }
  return nullptr;
}

const char* type_name(TensorType type) {
  const TypeTraits* t = type_traits(type);
  return t ? t->name : "unknown";
}

bool parse_type_name(const char* name, TensorType* out) {
  if (name == nullptr || out == nullptr) return false;
  for (const TypeRow& row : kTypes) {
    if (!row.weight) continue;
    const char* a = row.traits.name;
    const char* b = name;
    while (*a && *b && std::tolower((unsigned char)*a) == std::tolower((unsigned char)*b)) ++a, ++b;
    if (*a == '\0' && *b == '\0') {
      *out = row.type;
      return true;
    }
  }
  return false;
}

size_t row_bytes(TensorType type, int64_t n) {
  const TypeTraits* t = type_traits(type);
  if (t == nullptr || n <= 0) return 0;  // unsupported type or empty row: no bytes rather than a crash
  return (size_t)(n / t->block_elems) * t->block_bytes;
}

}  // namespace pginfer
