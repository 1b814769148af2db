// kernels/cpu/attention_avx2.cpp: attend_head_f16 with AVX2, FMA and F16C (same rounding as the scalar
// version; only the order of float additions differs).
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/fp16.h"

namespace pginfer {

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void attend_head_f16_avx2(const float* q, const fp16_t* keys, const fp16_t* values, int64_t stride,
                          int64_t n_kv, int64_t head_dim, float scale, float* scores, float* out) {
  if (head_dim % 8 != 0 || head_dim > 512) {
    attend_head_f16_scalar(q, keys, values, stride, n_kv, head_dim, scale, scores, out);
    return;
  }
  alignas(32) float qr[512];
  for (int64_t d = 0; d < head_dim; ++d) qr[d] = round_to_fp16(q[d]);
  float max_score = -INFINITY;
  for (int64_t j = 0; j < n_kv; ++j) {
    const fp16_t* k = keys + j * stride;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t d = 0; d < head_dim; d += 8) {
      const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d)));
      acc = _mm256_fmadd_ps(_mm256_load_ps(qr + d), kv, acc);
    }
    const float s = hsum(acc) * scale;
    scores[j] = s;
    max_score = s > max_score ? s : max_score;
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n_kv; ++j) {
    const float e = std::exp(scores[j] - max_score);
    scores[j] = e;
    sum += (double)e;
  }
  const float inv_sum = (float)(1.0 / sum);
  __m256 acc[64];
  const int64_t n_vec = head_dim / 8;
  for (int64_t i = 0; i < n_vec; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_kv; ++j) {
    const __m256 p = _mm256_set1_ps(round_to_fp16(scores[j] * inv_sum));
    const fp16_t* v = values + j * stride;
    for (int64_t i = 0; i < n_vec; ++i) {
      const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 8 * i)));
      acc[i] = _mm256_fmadd_ps(p, vv, acc[i]);
    }
  }
  for (int64_t i = 0; i < n_vec; ++i) _mm256_storeu_ps(out + 8 * i, acc[i]);
}

}  // namespace pginfer
