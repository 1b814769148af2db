// kernels/cpu/vec_dot_avx2.cpp: row dots with AVX2, FMA and F16C. Integer products use the usual sign
// trick (|w| times sign(w)*a through maddubs), which cannot saturate for these value ranges.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/vec_dot_impl.h"

namespace pginfer {

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// Sums of products of signed bytes, 4 adjacent pairs per 32-bit lane, as floats.
inline __m256 dot_i8_to_ps(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  const __m256i dot16 = _mm256_maddubs_epi16(ax, sy);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)));
}

// The 32 nibbles of 16 bytes as bytes: low nibbles first, then high nibbles.
inline __m256i nibbles_to_bytes(const uint8_t* p) {
  const __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K/Q5_K super-block, unpacked from 12 bytes.
inline void unpack_k4_scales(const uint8_t* packed, uint8_t* out16) {
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
  u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);  // mins 4-7
  const uint32_t mins03 = u[1] & m6;                       // mins 0-3
  u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);          // scales 4-7
  u[2] = mins03;
  u[0] &= m6;  // scales 0-3
  std::memcpy(out16, u, 16);
}

// Q4_K and Q5_K share everything but the fifth bit.
template <bool kFifthBit, typename Block>
float dot_qk_avx2(int64_t n, const Block* x, const BlockQ8_K* y) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  float acc_min = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sm[16];
    unpack_k4_scales(x[b].scales, sm);
    int32_t summ = 0;
    for (int j = 0; j < 8; ++j) summ += sm[8 + j] * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    acc_min += y[b].d * half(x[b].dmin) * (float)summ;
    __m256i hbits;
    if constexpr (kFifthBit) hbits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh));
    __m256i sumi = _mm256_setzero_si256();
    const uint8_t* q = x[b].qs;
    const int8_t* a = y[b].qs;
    for (int j = 0; j < 4; ++j, q += 32, a += 64) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
      __m256i lo = _mm256_and_si256(bits, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
      if constexpr (kFifthBit) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
      }
      const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
      const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 32)));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_set1_epi16(sm[2 * j])));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_set1_epi16(sm[2 * j + 1])));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * half(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc) - acc_min;
}

}  // namespace

float dot_f32_avx2(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

float dot_f16_avx2(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  auto load = [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(load(x + i), load(y + i), s0);
    s1 = _mm256_fmadd_ps(load(x + i + 8), load(y + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += half(x[i]) * half(y[i]);
  return s;
}

float dot_bf16_avx2(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  auto load = [](const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  };
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(load(x + i), load(y + i), s0);
    s1 = _mm256_fmadd_ps(load(x + i + 8), load(y + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) {
    uint32_t bx = (uint32_t)x[i] << 16, by = (uint32_t)y[i] << 16;
    float fx, fy;
    std::memcpy(&fx, &bx, 4);
    std::memcpy(&fy, &by, 4);
    s += fx * fy;
  }
  return s;
}

float dot_q8_0_avx2(int64_t n, const void* w, const void* a) {
  // One accumulator, one fused multiply-add per block, as GGML's AVX2 kernel and llamafile's tinyBLAS
  // accumulate: keeps our sums in llama.cpp's order (see kernels/cpu/gemm.h on why order matters).
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(x[b].d) * half(y[b].d)), dot_i8_to_ps(qx, qy), acc);
  }
  return hsum(acc);
}

float dot_q4_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const __m256i qx = _mm256_sub_epi8(nibbles_to_bytes(x[b].qs), eight);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(x[b].d) * half(y[b].d)), dot_i8_to_ps(qx, qy), acc);
  }
  return hsum(acc);
}

float dot_q4_k_avx2(int64_t n, const void* w, const void* a) {
  return dot_qk_avx2<false>(n, static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a));
}

float dot_q5_k_avx2(int64_t n, const void* w, const void* a) {
  return dot_qk_avx2<true>(n, static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a));
}

float dot_q6_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i two = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int8_t* sc = x[b].scales;
    int32_t offset = 0;  // sum of scale * bsum: the -32 of every quant
    for (int j = 0; j < 16; ++j) offset += sc[j] * y[b].bsums[j];
    __m256i sumi = _mm256_setzero_si256();
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    const int8_t* a8 = y[b].qs;
    for (int c = 0; c < 2; ++c, ql += 64, qh += 32, a8 += 128) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, two), 4)),
          _mm256_or_si256(_mm256_and_si256(l1, low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), two), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), two), 4)),
      };
      for (int k = 0; k < 4; ++k) {
        const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a8 + 32 * k)));
        const int g = c * 8 + 2 * k;  // the two groups of 16 this vector covers
        const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
      }
    }
    sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * offset, 0, 0, 0, 0, 0, 0, 0));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(x[b].d) * y[b].d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc);
}

}  // namespace pginfer

namespace pginfer {

void dot_q8_0_rows_tokens_avx2(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* acts,
                               size_t act_stride, int64_t n_tokens, float* out, int64_t ldo) {
  constexpr int kTokens = 4;
  const int64_t nb = n / kQK8_0;
  for (int64_t r = 0; r < rows; ++r) {
    const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(w + r * row_stride);
    int64_t t = 0;
    for (; t + kTokens <= n_tokens; t += kTokens) {
      const BlockQ8_0* y[kTokens];
      __m256 acc[kTokens];
      for (int i = 0; i < kTokens; ++i) {
        y[i] = reinterpret_cast<const BlockQ8_0*>(acts + (t + i) * act_stride);
        acc[i] = _mm256_setzero_ps();
      }
      for (int64_t b = 0; b < nb; ++b) {
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
        const __m256i ax = _mm256_sign_epi8(qx, qx);
        const float dx = half(x[b].d);
        for (int i = 0; i < kTokens; ++i) {
          const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i][b].qs)), qx);
          const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1)));
          acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dx * half(y[i][b].d)), s, acc[i]);
        }
      }
      for (int i = 0; i < kTokens; ++i) out[(t + i) * ldo + r] = hsum(acc[i]);
    }
    for (; t < n_tokens; ++t) out[t * ldo + r] = dot_q8_0_avx2(n, x, acts + t * act_stride);
  }
}

}  // namespace pginfer
