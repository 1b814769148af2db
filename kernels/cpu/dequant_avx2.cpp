// kernels/cpu/dequant_avx2.cpp: dequantization with AVX2 + F16C for the types prompts stream through
// sgemm tiles. Same formulas as the scalar code in quant.cpp (each value is one float multiply and,
// for K-quants, one subtraction, so results are bit-identical).
#include <immintrin.h>

#include "kernels/cpu/quant_impl.h"
#include "kernels/cpu/simd_x86.h"

namespace pginfer {

namespace {

// 8 signed bytes at p, as floats times d.
inline __m256 i8x8_times(const int8_t* p, __m256 d) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), d);
}

// 8 unsigned bytes at p (values < 256) as floats: d * q - m.
inline __m256 u8x8_affine(const uint8_t* p, __m256 d, __m256 m) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))), m);
}

}  // namespace

void dequantize_row_avx2(TensorType type, const void* src, float* y, int64_t n) {
  switch (type) {
    case TensorType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
      }
      for (; i < n; ++i) y[i] = half(s[i]);
      return;
    }
    case TensorType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
      }
      for (; i < n; ++i) {
        const __m128 v = _mm_castsi128_ps(_mm_cvtsi32_si128((int)((uint32_t)s[i] << 16)));
        y[i] = _mm_cvtss_f32(v);
      }
      return;
    }
    case TensorType::Q8_0: {
      const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQK8_0; ++b, y += kQK8_0) {
        const __m256 d = _mm256_set1_ps(half(x[b].d));
        for (int j = 0; j < kQK8_0; j += 8) _mm256_storeu_ps(y + j, i8x8_times(x[b].qs + j, d));
      }
      return;
    }
    case TensorType::Q4_0: {
      const BlockQ4_0* x = static_cast<const BlockQ4_0*>(src);
      for (int64_t b = 0; b < n / kQK4_0; ++b, y += kQK4_0) {
        const __m256 d = _mm256_set1_ps(half(x[b].d));
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs));
        alignas(16) uint8_t v[32];
        _mm_store_si128(reinterpret_cast<__m128i*>(v), _mm_and_si128(q, _mm_set1_epi8(0x0f)));
        _mm_store_si128(reinterpret_cast<__m128i*>(v + 16), _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0f)));
        // (q - 8) * d with the subtraction in integers, as the scalar code does.
        for (int j = 0; j < 32; j += 8) {
          const __m256i w = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v + j))),
                                             _mm256_set1_epi32(8));
          _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(w), d));
        }
      }
      return;
    }
    case TensorType::Q4_K:
    case TensorType::Q5_K: {
      const bool five = type == TensorType::Q5_K;
      const BlockQ4_K* x4 = static_cast<const BlockQ4_K*>(src);
      const BlockQ5_K* x5 = static_cast<const BlockQ5_K*>(src);
      for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = half(five ? x5[b].d : x4[b].d);
        const float dmin = half(five ? x5[b].dmin : x4[b].dmin);
        const uint8_t* scales = five ? x5[b].scales : x4[b].scales;
        const uint8_t* q = five ? x5[b].qs : x4[b].qs;
        alignas(32) uint8_t v[64];
        for (int j = 0; j < 4; ++j, q += 32) {
          const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
          __m256i lo = _mm256_and_si256(bits, _mm256_set1_epi8(0x0f));
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), _mm256_set1_epi8(0x0f));
          if (five) {
            const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x5[b].qh));
            const __m256i one = _mm256_set1_epi8(1);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * j + 1), one), 4));
          }
          _mm256_store_si256(reinterpret_cast<__m256i*>(v), lo);
          _mm256_store_si256(reinterpret_cast<__m256i*>(v + 32), hi);
          for (int half_index = 0; half_index < 2; ++half_index) {
            uint8_t sc, m;
            k_scale_min(2 * j + half_index, scales, &sc, &m);
            const __m256 dv = _mm256_set1_ps(d * sc), mv = _mm256_set1_ps(dmin * m);
            for (int l = 0; l < 32; l += 8) {
              _mm256_storeu_ps(y + l, u8x8_affine(v + 32 * half_index + l, dv, mv));
            }
            y += 32;
          }
        }
      }
      return;
    }
    case TensorType::Q6_K: {
      const BlockQ6_K* x = static_cast<const BlockQ6_K*>(src);
      for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = half(x[b].d);
        const uint8_t* ql = x[b].ql;
        const uint8_t* qh = x[b].qh;
        const int8_t* sc = x[b].scales;
        for (int c = 0; c < 2; ++c, ql += 64, qh += 32, sc += 8, y += 128) {
          const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
          const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
          const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
          const __m256i low4 = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
          alignas(32) int8_t v[128];
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, three), 4)),
              _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), three), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), three), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), three), 4)),
          };
          for (int k = 0; k < 4; ++k) {
            _mm256_store_si256(reinterpret_cast<__m256i*>(v + 32 * k), _mm256_sub_epi8(q[k], k32));
          }
          for (int g = 0; g < 8; ++g) {  // 8 groups of 16 values, each with its own scale
            const __m256 dv = _mm256_set1_ps(d * (float)sc[g]);
            _mm256_storeu_ps(y + 16 * g, i8x8_times(v + 16 * g, dv));
            _mm256_storeu_ps(y + 16 * g + 8, i8x8_times(v + 16 * g + 8, dv));
          }
        }
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace pginfer
