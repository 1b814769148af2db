// kernels/cpu/quant_avx2.cpp: activation quantization to Q8_0 and Q8_K with AVX2 + F16C, the same float
// operations as quantize_q8_0 in quant.cpp and quantize_q8_k in quant_k.cpp (the largest magnitude, the
// scale from it, x times its inverse rounded half to even), so every finite input gives the same bytes. (Q8_0:
// NaN inputs, which no model should produce, may quantize otherwise; Q8_K hands blocks with NaNs, infinities or
// only tiny values to the scalar code.)
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/quant_impl.h"

namespace pginfer {

namespace {

// The largest of 8 lanes.
inline float hmax8(__m256 m) {
  __m128 h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// x * scale rounded half to even, as int32 (8 values).
inline __m256i round_scaled(const float* x, __m256 scale) {
  return _mm256_cvtps_epi32(
      _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// 32 int32 values in [-128, 127] stored as bytes, in order (the packs interleave 128-bit lanes, the permute
// restores the order).
inline void store_bytes(const __m256i q[4], int8_t* out) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bytes);
}

}  // namespace

void quantize_q8_0_avx2(const float* x, BlockQ8_0* y, int64_t nb) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < nb; ++i, x += kQK8_0) {
    // max(|x|, m) keeps m when |x| is NaN, as the scalar comparison does.
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    for (int k = 1; k < 4; ++k) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), m);
    const float amax = hmax8(m);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256 scale = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = round_scaled(x + 8 * k, scale);  // in [-127, 127]
    store_bytes(q, y[i].qs);
  }
}

void quantize_q8_k_avx2(const float* x, BlockQ8_K* y, int64_t nb) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i top = _mm256_set1_epi32(127);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    // The largest magnitude (max(|x|, m) keeps m when |x| is NaN, as the scalar comparison does), and whether
    // any value is NaN.
    __m256 m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (int k = 0; k < kQK_K / 8; ++k) {
      const __m256 v = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(_mm256_andnot_ps(sign, v), m);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    const float amax = hmax8(m);
    // Infinities and NaNs take the scalar code, whose rounding of them the vector one does not repeat.
    if (amax == 0 || !std::isfinite(amax) || _mm256_movemask_ps(nan) != 0) {
      quantize_q8_k(x, y + i, 1);
      continue;
    }
    // The scalar code keeps the first value of the largest magnitude, with its sign.
    float max = 0;
    const __m256 target = _mm256_set1_ps(amax);
    for (int k = 0; k < kQK_K / 8; ++k) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), target,
                                                       _CMP_EQ_OQ));
      if (hit != 0) {
        max = x[8 * k + __builtin_ctz((unsigned)hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    if (!std::isfinite(iscale)) {  // a tiny (denormal) max: the products overflow, which the scalar code rounds
      quantize_q8_k(x, y + i, 1);
      continue;
    }
    const __m256 scale = _mm256_set1_ps(iscale);
    for (int c = 0; c < kQK_K / 32; ++c) {
      __m256i q[4];
      for (int k = 0; k < 4; ++k) q[k] = _mm256_min_epi32(round_scaled(x + 32 * c + 8 * k, scale), top);
      // Sums of values 32c..32c+15 and 32c+16..32c+31 (bsums 2c and 2c + 1).
      const __m256i s = _mm256_hadd_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      const __m128i s2 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const __m128i s4 = _mm_hadd_epi32(s2, s2);
      y[i].bsums[2 * c] = (int16_t)_mm_cvtsi128_si32(s4);
      y[i].bsums[2 * c + 1] = (int16_t)_mm_extract_epi32(s4, 1);
      store_bytes(q, y[i].qs + 32 * c);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace pginfer
