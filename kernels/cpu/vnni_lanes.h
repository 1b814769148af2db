// kernels/cpu/vnni_lanes.h: vector operations on 16 lanes (512 bits) or 8 (256 bits) under one set of names, so
// that the packed batched kernels (vec_dot_avx512vnni.cpp, vec_dot_q4_0_avx512vnni.cpp,
// vec_dot_k_avx512vnni.cpp) are written once for both widths. Included only by translation units compiled for
// AVX-512 VNNI.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/simd_x86.h"

namespace pginfer {
namespace vnni {

// Vector operations on 16 lanes (a whole packed block) or on the first 8 (a last group of at most 8 tokens).
struct Lanes16 {
  using I = __m512i;
  using F = __m512;
  static constexpr int kLanes = 16;
  static I load(const void* p) { return _mm512_loadu_si512(p); }
  static F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static I set1(int32_t v) { return _mm512_set1_epi32(v); }
  // Broadcasts a 256-bit vector whose 8 lanes are equal.
  static I widen(__m256i v) { return _mm512_broadcast_i64x4(v); }
  static I dpbusd(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
  static I dpwssd(I acc, I a, I b) { return _mm512_dpwssd_epi32(acc, a, b); }
  static I maddubs(I u, I s) { return _mm512_maddubs_epi16(u, s); }
  static I add16(I a, I b) { return _mm512_add_epi16(a, b); }
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I shl5(I a) { return _mm512_slli_epi32(a, 5); }
  static I zero() { return _mm512_setzero_si512(); }
  static F zerof() { return _mm512_setzero_ps(); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F addf(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F set1f(float v) { return _mm512_set1_ps(v); }
  static F cvt(I v) { return _mm512_cvtepi32_ps(v); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
};

struct Lanes8 {
  using I = __m256i;
  using F = __m256;
  static constexpr int kLanes = 8;
  static I load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static I set1(int32_t v) { return _mm256_set1_epi32(v); }
  static I widen(__m256i v) { return v; }
  static I dpbusd(I acc, I u, I s) { return _mm256_dpbusd_epi32(acc, u, s); }
  static I dpwssd(I acc, I a, I b) { return _mm256_dpwssd_epi32(acc, a, b); }
  static I maddubs(I u, I s) { return _mm256_maddubs_epi16(u, s); }
  static I add16(I a, I b) { return _mm256_add_epi16(a, b); }
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I shl5(I a) { return _mm256_slli_epi32(a, 5); }
  static I zero() { return _mm256_setzero_si256(); }
  static F zerof() { return _mm256_setzero_ps(); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F addf(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F set1f(float v) { return _mm256_set1_ps(v); }
  static F cvt(I v) { return _mm256_cvtepi32_ps(v); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
};

// Tokens in one packed group of activations: the lanes of a 512-bit register.
constexpr int kPackedTokens = 16;

// Packs n_tokens activation rows of nb blocks each (Block, act_stride bytes apart) into groups of
// kPackedTokens tokens: *packed becomes groups * nb blocks of Packed, all zero (lanes past the last token stay
// so), then fill(packed block, activation block, lane) writes each token's lane of the blocks of its group.
template <class Packed, class Block, class Fill>
static inline void pack_token_groups(int64_t nb, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                                     std::vector<uint8_t>* packed, Fill&& fill) {
  const int64_t groups = (n_tokens + kPackedTokens - 1) / kPackedTokens;
  packed->assign((size_t)(groups * nb) * sizeof(Packed), 0);
  Packed* p = reinterpret_cast<Packed*>(packed->data());
  for (int64_t t = 0; t < n_tokens; ++t) {
    const Block* y = reinterpret_cast<const Block*>(acts + t * act_stride);
    Packed* g = p + (t / kPackedTokens) * nb;
    for (int64_t b = 0; b < nb; ++b) fill(g[b], y[b], (int)(t % kPackedTokens));
  }
}

// out[t * ldo] = the value of lane t of v, for the group's n_valid tokens.
template <class V>
static inline void store_tokens(typename V::F v, int64_t n_valid, float* out, int64_t ldo) {
  alignas(64) float o[V::kLanes];
  V::store(o, v);
  for (int64_t t = 0; t < n_valid; ++t) out[t * ldo] = o[t];
}

// The loops of a packed product: packed groups of kPackedTokens tokens outside (`group_elems` elements of
// packed data each), rows inside in groups of G from G bands (for_row_groups), calling
// tile.template operator()<V, R>(w0, step, group, n_valid, out, ostep) with V = Lanes16, or Lanes8 for a
// group of at most 8 tokens. One group's activations stay in L1 while the rows, a cache-sized band (the
// caller's), are read from L2 once per group; rows outside read every group from L2 or beyond for every few
// rows (73 against 96 GMAC/s for Q8_0 at 512 tokens of 768 values).
template <int G, class Packed, class Tile>
static inline void for_packed_groups(const uint8_t* w, size_t row_stride, int64_t rows, const Packed* packed,
                                     int64_t group_elems, int64_t n_tokens, float* out, int64_t ldo, Tile&& tile) {
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kPackedTokens) {
    const int64_t valid = std::min<int64_t>(kPackedTokens, n_tokens - t0);
    const Packed* group = packed + (t0 / kPackedTokens) * group_elems;
    for_row_groups<G>(rows, w, row_stride, out + t0 * ldo,
                      [&]<int R>(const uint8_t* w0, size_t step, float* o, int64_t os) {
                        if (valid > Lanes8::kLanes) {
                          tile.template operator()<Lanes16, R>(w0, step, group, valid, o, os);
                        } else {
                          tile.template operator()<Lanes8, R>(w0, step, group, valid, o, os);
                        }
                      });
  }
}

}  // namespace vnni
}  // namespace pginfer
