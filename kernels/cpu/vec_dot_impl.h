// kernels/cpu/vec_dot_impl.h: the per-ISA row-dot functions behind dot_rows (vec_dot.cpp dispatches).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// Row kernels of one instruction set: out[r] = dot(row r, act) for r in [0, rows), where row r starts at
// w + r * row_stride and `act` is already of vec_dot_type(type). A row's result does not depend on `rows`
// or on the row's position (groups of rows only share loads). False when `type` has no dot product.
bool dot_rows_isa_scalar(TensorType type, int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const void* act,
                         float* out);  // vec_dot_scalar.cpp, emulates the AVX2 kernels (Q8_0: defines its order)
bool dot_rows_isa_avx2(TensorType type, int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const void* act,
                       float* out);  // vec_dot_avx2.cpp
bool dot_rows_isa_avx512(TensorType type, int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const void* act,
                         float* out);  // vec_dot_avx512.cpp

// dot_rows with the kernels of `level` (capped at machine_simd_level()): for tests and benchmarks.
void dot_rows_level(SimdLevel level, TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                    const void* act, float* out);

// out = dot of one weight row (n values of the named type) with an activation row of its vec_dot type.
using RowDotFn = float (*)(int64_t n, const void* w, const void* a);

// Scalar versions of one row (vec_dot_scalar.cpp; the reference the SIMD ones are tested against).
float dot_f32_scalar(int64_t n, const void* w, const void* a);
float dot_f16_scalar(int64_t n, const void* w, const void* a);
float dot_bf16_scalar(int64_t n, const void* w, const void* a);
float dot_q8_0_scalar(int64_t n, const void* w, const void* a);
float dot_q4_0_scalar(int64_t n, const void* w, const void* a);
float dot_q4_k_scalar(int64_t n, const void* w, const void* a);
float dot_q5_k_scalar(int64_t n, const void* w, const void* a);
float dot_q6_k_scalar(int64_t n, const void* w, const void* a);

// Q8_0 with AVX-512 VNNI (vec_dot_avx512vnni.cpp), in the block-exact order of vec_dot_q8_0.h:
// dot_rows for one activation row; the token-interleaved copy of n_tokens activation rows that
// dot_q8_0_packed_vnni reads (written to *packed); and out[t * ldo + r] = dot(row r, token t) from that copy.
void dot_q8_0_rows_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const void* act, float* out);
void pack_q8_0_tokens_vnni(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                           std::vector<uint8_t>* packed);
void dot_q8_0_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo);

// Q4_0 weights times many tokens with AVX-512 VNNI, in GGML's order, bit-identical to dot_rows
// (vec_dot_q4_0_avx512vnni.cpp): the packed copy of n_tokens Q8_0 activation rows, and the product from it.
void pack_q4_0_tokens_vnni(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                           std::vector<uint8_t>* packed);
void dot_q4_0_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo);

// Q4_K, Q5_K and Q6_K weights times many tokens with AVX-512 VNNI, in GGML's order, bit-identical to dot_rows
// (vec_dot_k_avx512vnni.cpp): the packed copy of n_tokens Q8_K activation rows (the same for the three
// types), and the products from it.
void pack_k_tokens_vnni(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                        std::vector<uint8_t>* packed);
void dot_q4_k_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo);
void dot_q5_k_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo);
void dot_q6_k_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo);

}  // namespace pginfer
