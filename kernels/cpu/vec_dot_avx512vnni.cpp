// kernels/cpu/vec_dot_avx512vnni.cpp: Q8_0 rows times several tokens with AVX-512 VNNI (256-bit forms).
//
// vpdpbusd multiplies unsigned by signed bytes. Activations are biased to unsigned (a + 128) once per
// block and token, and each lane starts from -128 * (the sum of its four weights), so every 32-bit lane
// ends with exactly the integer sum of its four products a * w: the same lanes, converted and accumulated
// in the same order, as the one-token AVX2 kernel (and GGML's), hence bit-identical results. Two weight
// rows and four tokens are computed together so that loads and conversions are shared.
#include <immintrin.h>

#include <vector>

#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/vec_dot_impl.h"

namespace pginfer {

namespace {

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// -128 times the sum of each lane's four weights: the start value that removes the activation bias.
inline __m256i bias_correction(__m256i w) {
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), w));
}

}  // namespace

void dot_q8_0_rows_tokens_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* acts,
                               size_t act_stride, int64_t n_tokens, float* out, int64_t ldo) {
  const int64_t nb = n / kQK8_0;
  const __m256i bias = _mm256_set1_epi8((char)0x80);
  // Activation scales as floats, once per call: [token][block].
  std::vector<float> act_scale(n_tokens * nb);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(acts + t * act_stride);
    for (int64_t b = 0; b < nb; ++b) act_scale[t * nb + b] = _cvtsh_ss(y[b].d);
  }
  auto act = [&](int64_t t) { return reinterpret_cast<const BlockQ8_0*>(acts + t * act_stride); };
  auto row = [&](int64_t r) { return reinterpret_cast<const BlockQ8_0*>(w + r * row_stride); };

  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const BlockQ8_0* x0 = row(r);
    const BlockQ8_0* x1 = row(r + 1);
    int64_t t = 0;
    for (; t + 4 <= n_tokens; t += 4) {
      const BlockQ8_0* y[4] = {act(t), act(t + 1), act(t + 2), act(t + 3)};
      const float* ds[4] = {&act_scale[t * nb], &act_scale[(t + 1) * nb], &act_scale[(t + 2) * nb],
                            &act_scale[(t + 3) * nb]};
      __m256 acc0[4], acc1[4];
      for (int i = 0; i < 4; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const __m256i w0 = load32(x0[b].qs), w1 = load32(x1[b].qs);
        const __m256i c0 = bias_correction(w0), c1 = bias_correction(w1);
        const __m256 d0 = _mm256_set1_ps(_cvtsh_ss(x0[b].d)), d1 = _mm256_set1_ps(_cvtsh_ss(x1[b].d));
        for (int i = 0; i < 4; ++i) {
          const __m256i a = _mm256_xor_si256(load32(y[i][b].qs), bias);
          const __m256 da = _mm256_broadcast_ss(ds[i] + b);
          acc0[i] = _mm256_fmadd_ps(_mm256_mul_ps(d0, da), _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(c0, a, w0)), acc0[i]);
          acc1[i] = _mm256_fmadd_ps(_mm256_mul_ps(d1, da), _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(c1, a, w1)), acc1[i]);
        }
      }
      for (int i = 0; i < 4; ++i) {
        out[(t + i) * ldo + r] = hsum8(acc0[i]);
        out[(t + i) * ldo + r + 1] = hsum8(acc1[i]);
      }
    }
    for (; t < n_tokens; ++t) {
      out[t * ldo + r] = dot_q8_0_avx2(n, x0, act(t));
      out[t * ldo + r + 1] = dot_q8_0_avx2(n, x1, act(t));
    }
  }
  for (; r < rows; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) out[t * ldo + r] = dot_q8_0_avx2(n, row(r), act(t));
  }
}

}  // namespace pginfer
