// kernels/cpu/k_quants_avx512.h: unpacking of Q6_K super-blocks with AVX-512 (F, BW, VL), shared by the
// one-token kernels (vec_dot_avx512.cpp) and the packed many-token ones (vec_dot_k_avx512vnni.cpp). Included
// only by translation units compiled for AVX-512; every function is static inline (see simd_x86.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// The unsigned quants (0-63) of values 128c..128c+63 (*q0) and 128c+64..128c+127 (*q1) of a Q6_K
// super-block, in order, c = 0 or 1: the low (q0) or high (q1) nibbles of ql[64c..64c+63], with the two high
// bits from qh[32c..32c+31] (bits 0-1 for the first 32 values of q0, 2-3 for its last 32, 4-5 and 6-7 for
// q1's).
static inline void q6k_quants(const BlockQ6_K& xb, int c, __m512i* q0, __m512i* q1) {
  constexpr __mmask32 kLowHalf16 = 0x0000ffffu;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  const __m512i l = _mm512_loadu_si512(xb.ql + 64 * c);
  const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qh + 32 * c)));
  // qh bits 0-1 (low half) and 2-3 (high half) to bits 4-5 for the low values; bits 4-5 and 6-7 for the
  // high values.
  const __m512i h4 = _mm512_slli_epi16(h, 2);
  const __m512i t0 = _mm512_and_si512(_mm512_mask_slli_epi16(h4, kLowHalf16, h4, 2), m30);
  const __m512i h2 = _mm512_srli_epi16(h, 2);
  const __m512i t1 = _mm512_and_si512(_mm512_mask_slli_epi16(h2, kLowHalf16, h2, 2), m30);
  // (l & 0x0f) | t: ternary logic 0xEC = (A & C) | B with A = l, B = t, C = 0x0f.
  *q0 = _mm512_ternarylogic_epi32(l, t0, low4, 0xec);
  *q1 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), t1, low4, 0xec);
}

}  // namespace pginfer
