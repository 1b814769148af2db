// kernels/cpu/vec_dot_q8_0.h: Q8_0 row dots in our block-exact order, for one activation row, shared by the
// AVX2 and the AVX-512 VNNI kernels (each translation unit compiles its own copy for its instruction set).
//
// The order every level reproduces (dot_q8_0_scalar is its definition): for each 32-value block b, from the
// first, the integer sum s_b of its 32 products (exact), then acc = fma(float(d_w) * float(d_a), float(s_b),
// acc), starting from 0. Unlike GGML's order (8 float lanes per block, then a tree), one float operation
// per block per row and token: batched kernels can then put tokens, not partial sums, in the lanes
// (vec_dot_avx512vnni.cpp), which takes a third of the operations. Results differ from llama.cpp's in the
// last bits only (tests/unit/vec_dot_test.cpp bounds the difference).
//
// Here eight rows are computed at once, one per 32-bit lane: each row's block gives 8 lanes of partial
// integer sums (BlockDot), the 8 rows' vectors are reduced to one vector of 8 block sums, and one multiply-add
// per block advances all 8 rows. Rows come from 8 bands of the matrix (for_row_groups), so memory sees long
// sequential streams.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// Lane i = the sum of the 8 lanes of v[i] (integer, exact in any order).
static inline __m256i q8_0_reduce8(const __m256i (&v)[8]) {
  const __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

// The sum of the 8 lanes of v, in every lane (integer, exact in any order).
static inline __m256i q8_0_hsum_all_epi32(__m256i v) {
  v = _mm256_add_epi32(v, _mm256_permute2x128_si256(v, v, 1));
  v = _mm256_add_epi32(v, _mm256_shuffle_epi32(v, 0x4e));
  return _mm256_add_epi32(v, _mm256_shuffle_epi32(v, 0xb1));
}

// The sum of the 8 lanes of v.
static inline int32_t q8_0_hsum_epi32(__m256i v) { return _mm256_cvtsi256_si32(q8_0_hsum_all_epi32(v)); }

// One row (the tail of a matrix), in the same order.
template <class BlockDot>
static inline float q8_0_row(int64_t nb, const BlockQ8_0* x, const BlockQ8_0* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int32_t s = q8_0_hsum_epi32(BlockDot::dot(BlockDot::start(y[b].qs), x[b].qs, y[b].qs));
    acc = std::fma(half(x[b].d) * half(y[b].d), (float)s, acc);
  }
  return acc;
}

// Rows w0 + i * step for i in [0, 8), results to out[i * ostep].
template <class BlockDot>
static inline void q8_0_rows8(int64_t nb, const uint8_t* w0, size_t step, const BlockQ8_0* y, float* out,
                              int64_t ostep) {
  const BlockQ8_0* x[8];
  _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) x[i] = reinterpret_cast<const BlockQ8_0*>(w0 + i * step);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i start = BlockDot::start(y[b].qs);
    __m256i v[8];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) v[i] = BlockDot::dot(start, x[i][b].qs, y[b].qs);
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16((short)x[0][b].d, (short)x[1][b].d, (short)x[2][b].d,
                                                     (short)x[3][b].d, (short)x[4][b].d, (short)x[5][b].d,
                                                     (short)x[6][b].d, (short)x[7][b].d));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(half(y[b].d))), _mm256_cvtepi32_ps(q8_0_reduce8(v)), acc);
  }
  alignas(32) float o[8];
  _mm256_store_ps(o, acc);
  for (int i = 0; i < 8; ++i) out[i * ostep] = o[i];
}

// out[r] = dot(row r, y) for `rows` rows of n values, row_stride bytes apart.
template <class BlockDot>
static inline void q8_0_rows(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const BlockQ8_0* y,
                             float* out) {
  const int64_t nb = n / kQK8_0;
  for_row_groups<8>(rows, w, row_stride, out, [&]<int R>(const uint8_t* w0, size_t step, float* o, int64_t os) {
    if constexpr (R == 8) {
      q8_0_rows8<BlockDot>(nb, w0, step, y, o, os);
    } else {
      o[0] = q8_0_row<BlockDot>(nb, reinterpret_cast<const BlockQ8_0*>(w0), y);
    }
  });
}

}  // namespace pginfer
