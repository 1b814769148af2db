// kernels/cpu/vnni_lanes.h: vector operations on 16 lanes (512 bits) or 8 (256 bits) under one set of names, so
// that the packed batched kernels (vec_dot_avx512vnni.cpp, vec_dot_q4_0_avx512vnni.cpp) are written once for
// both widths. Included only by translation units compiled for AVX-512 VNNI.
#pragma once

#include <immintrin.h>

#include <cstdint>

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
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
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
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I zero() { return _mm256_setzero_si256(); }
  static F zerof() { return _mm256_setzero_ps(); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F addf(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F set1f(float v) { return _mm256_set1_ps(v); }
  static F cvt(I v) { return _mm256_cvtepi32_ps(v); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
};

}  // namespace vnni
}  // namespace pginfer
