// kernels/cpu/quant_avx2.cpp: activation quantization to Q8_0 with AVX2 + F16C, the same float operations as
// quantize_q8_0 in quant.cpp (the largest magnitude, d = amax / 127 stored as F16, x * (127 / amax) rounded
// half to even), so every finite input gives the same bytes. (NaN inputs, which no model should produce, may
// quantize otherwise.)
#include <immintrin.h>

#include "kernels/cpu/quant_impl.h"

namespace pginfer {

void quantize_q8_0_avx2(const float* x, BlockQ8_0* y, int64_t nb) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < nb; ++i, x += kQK8_0) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    // max(|x|, m) keeps m when |x| is NaN, as the scalar comparison does.
    __m256 m = _mm256_andnot_ps(sign, v[0]);
    for (int k = 1; k < 4; ++k) m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);
    __m128 h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256 scale = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      q[k] = _mm256_cvtps_epi32(
          _mm256_round_ps(_mm256_mul_ps(v[k], scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    // Narrow to bytes (the values lie in [-127, 127]); the packs interleave 128-bit lanes, the permute
    // restores the order.
    const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), b);
  }
}

}  // namespace pginfer
