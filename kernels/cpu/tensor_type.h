// kernels/cpu/tensor_type.h: tensor element types and their on-disk block layouts.
//
// The numbering and the block structures are exactly those of GGML (ggml.h, ggml-common.h), since GGUF
// files store tensors in them. A block holds `block_elems` consecutive values of a row in `block_bytes`
// bytes; a row is always a whole number of blocks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pginfer {

// Element type of a tensor, numbered as GGML numbers them in GGUF files.
enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,  // activations only: the partner of the K-quants in dot products
  BF16 = 30,
};

// Values per super-block of the K-quants.
constexpr int kQK_K = 256;
// Values per block of Q4_0 and Q8_0.
constexpr int kQK8_0 = 32;
constexpr int kQK4_0 = 32;

// IEEE half-precision bits, as stored in files.
using fp16_t = uint16_t;
// bfloat16 bits, as stored in files.
using bf16_t = uint16_t;

// Q4_0: 32 values, x = (q - 8) * d; qs[j] holds value j in its low nibble and value j + 16 in its high one.
struct BlockQ4_0 {
  fp16_t d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q8_0: 32 values, x = q * d.
struct BlockQ8_0 {
  fp16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_K: 256 values in 8 sub-blocks of 32; x = d * sc * q - dmin * m with 6-bit sc and m packed in scales.
struct BlockQ4_K {
  fp16_t d;
  fp16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: as Q4_K with a fifth bit per value in qh.
struct BlockQ5_K {
  fp16_t d;
  fp16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 256 values in 16 sub-blocks of 16; x = d * scales[i] * (q - 32), q in 6 bits (ql low 4, qh high 2).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  fp16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: 256 activation values, x = q * d, with the sums of each group of 16 quants.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// Size facts of one tensor type.
struct TypeTraits {
  const char* name;    // GGML's name, e.g. "q4_K"
  int block_elems;     // values per block
  size_t block_bytes;  // bytes per block
};

// Traits of `type`, or nullptr when the type is not one we support.
const TypeTraits* type_traits(TensorType type);

// Traits of a raw GGUF type number, or nullptr when unsupported (does not trust the number).
const TypeTraits* type_traits_raw(uint32_t raw_type);

// Name of a type for messages ("q8_0"); "unknown" for unsupported numbers.
const char* type_name(TensorType type);

// Parses a type name as the command line writes it (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K;
// case-insensitive). Returns false when the name is not a weight type we support.
bool parse_type_name(const char* name, TensorType* out);

// Bytes of a row of `n` values of `type`; `n` must be a multiple of the block size.
size_t row_bytes(TensorType type, int64_t n);

}  // namespace pginfer
