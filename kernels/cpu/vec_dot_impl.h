// kernels/cpu/vec_dot_impl.h: the per-ISA row-dot functions behind dot_rows (vec_dot.cpp dispatches).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// out = dot of one weight row (n values of the named type) with an activation row of its vec_dot type.
using RowDotFn = float (*)(int64_t n, const void* w, const void* a);

// Scalar versions (portable; the reference the SIMD ones are tested against).
float dot_f32_scalar(int64_t n, const void* w, const void* a);
float dot_f16_scalar(int64_t n, const void* w, const void* a);
float dot_bf16_scalar(int64_t n, const void* w, const void* a);
float dot_q8_0_scalar(int64_t n, const void* w, const void* a);
float dot_q4_0_scalar(int64_t n, const void* w, const void* a);
float dot_q4_k_scalar(int64_t n, const void* w, const void* a);
float dot_q5_k_scalar(int64_t n, const void* w, const void* a);
float dot_q6_k_scalar(int64_t n, const void* w, const void* a);

// AVX2 + FMA + F16C versions (vec_dot_avx2.cpp).
float dot_f32_avx2(int64_t n, const void* w, const void* a);
float dot_f16_avx2(int64_t n, const void* w, const void* a);
float dot_bf16_avx2(int64_t n, const void* w, const void* a);
float dot_q8_0_avx2(int64_t n, const void* w, const void* a);
float dot_q4_0_avx2(int64_t n, const void* w, const void* a);
float dot_q4_k_avx2(int64_t n, const void* w, const void* a);
float dot_q5_k_avx2(int64_t n, const void* w, const void* a);
float dot_q6_k_avx2(int64_t n, const void* w, const void* a);

// Q8_0 rows times several tokens (see dot_rows_tokens): AVX2 (vec_dot_avx2.cpp) and AVX-512 VNNI
// (vec_dot_avx512vnni.cpp) versions, each bit-identical to dot_q8_0_avx2 per row and token.
void dot_q8_0_rows_tokens_avx2(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* acts,
                               size_t act_stride, int64_t n_tokens, float* out, int64_t ldo);
void dot_q8_0_rows_tokens_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* acts,
                               size_t act_stride, int64_t n_tokens, float* out, int64_t ldo);

}  // namespace pginfer
