// kernels/cpu/simd_x86.h: small x86 helpers shared by the kernels compiled for AVX2 and above.
//
// Every function is `static inline`: each translation unit keeps its own copy, compiled with its own
// instruction set, so an AVX-512 file's copy can never be linked into AVX2 code. The horizontal sums use
// GGML's trees, on which bit-identical results with llama.cpp depend.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace pginfer {

// IEEE half bits -> float (F16C).
static inline float half(uint16_t h) { return _cvtsh_ss(h); }

// Sum of 8 lanes as GGML's hsum_float_8: (upper 4 + lower 4), then lanes 0+2 and 1+3, then their sum.
static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Runs f<G>(first row, row step, first output, output step) over groups of G rows taken from G equal
// bands of the matrix (rows i, i + band, i + 2 * band, ...), then f<1> over the remaining rows. Each band is
// read front to back, so memory sees G long sequential streams, which the hardware prefetchers follow;
// groups of adjacent rows (many short streams) measured several times slower from memory.
// (static: each translation unit keeps its own copy, compiled for its instruction set.)
template <int G, typename F>
static inline void for_row_groups(int64_t rows, const uint8_t* w, size_t stride, float* out, F&& f) {
  const int64_t band = rows / G;
  if (G > 1 && band > 0) {
    for (int64_t i = 0; i < band; ++i) f.template operator()<G>(w + i * stride, band * stride, out + i, band);
  }
  for (int64_t r = G > 1 ? G * band : 0; r < rows; ++r) f.template operator()<1>(w + r * stride, stride, out + r, 1);
}

// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K/Q5_K super-block, as GGML unpacks them
// (its utmp words), from the 12 packed bytes u0, u1, u2 (16 bytes are read; the block continues after
// them): scales 0-3 = u0 & 0x3f.., scales 4-7 = (u2 & 0x0f..) | top bits of u0, mins 0-3 = u1 & 0x3f..,
// mins 4-7 = (u2 >> 4 & 0x0f..) | top bits of u1 (a byte's bits 6-7 move to bits 4-5).
static inline __m128i k4_unpack_scales_mins(const uint8_t* packed) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  const __m128i low =
      _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4)),
                    _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i top = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                    _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(low, top);
}

// Sum of 16 lanes held as two halves, in _mm512_reduce_add_ps's tree (halves first, then as hsum8).
static inline float hsum16_halves(__m256 lo, __m256 hi) { return hsum8(_mm256_add_ps(hi, lo)); }

}  // namespace pginfer
