// kernels/cpu/vec_dot_avx2.cpp: row dots with AVX2, FMA and F16C, several weight rows per pass.
//
// Every result is bit-identical to what llama.cpp's AVX2 CPU build (GGML's "haswell" variant) computes for
// one row with ggml_vec_dot_*: each row goes through GGML's float operations in GGML's order, and the
// integer work (exact) yields GGML's 32-bit lanes (lane l of a 32-value group holds the products of values
// 4l..4l+3). Q4_0 accumulates acc = fma(d_w * d_a, lanes, acc) per block; the K-quants accumulate
// acc = fma(d, lanes, acc) per super-block with GGML's mins accumulators; F32/F16 use GGML's 4 x 8-lane
// accumulators over steps of 32 values, BF16 its 4 mul+add accumulators. Integer products use the sign
// trick (|w| times a with w's sign through maddubs), which cannot saturate for these value ranges.
// Q8_0 is the exception: it follows our block-exact order (vec_dot_q8_0.h), not GGML's.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/vec_dot_impl.h"
#include "kernels/cpu/vec_dot_q8_0.h"

// Small loops over rows and chunks must be unrolled so that their accumulators stay in registers (-O2 alone
// keeps them in memory).
#define PGINFER_UNROLL _Pragma("GCC unroll 16")

namespace pginfer {

namespace {

// Rows computed side by side, from as many bands of the matrix (see for_row_groups); the float kernels
// and Q6_K keep two, within the 16 vector registers.
constexpr int kGroupQ = 4, kGroupF = 2;

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// The same tree on 4 lanes.
inline float hsum4(__m128 r) {
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

// GGML's GGML_F32x8_REDUCE on 4 accumulators: (0+2, 1+3), 0+1, halves, then two horizontal adds.
inline float reduce_f32x8(__m256* x) {
  x[0] = _mm256_add_ps(x[0], x[2]);
  x[1] = _mm256_add_ps(x[1], x[3]);
  x[0] = _mm256_add_ps(x[0], x[1]);
  const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(x[0]), _mm256_extractf128_ps(x[0], 1));
  const __m128 t1 = _mm_hadd_ps(t0, t0);
  return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

// Sums of 4 products of signed bytes per 32-bit lane (GGML's mul_sum_i8_pairs before the conversion).
inline __m256i dot_i8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

// The 32 nibbles of 16 bytes as bytes: low nibbles first, then high nibbles.
inline __m256i nibbles_to_bytes(const uint8_t* p) {
  const __m128i tmp = load128(p);
  const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// ---- Q8_0 ---------------------------------------------------------------------------------------------

// The block dot of vec_dot_q8_0.h with the sign trick: 8 lanes of 4-product sums, no correction needed.
struct Q8_0BlockDotAvx2 {
  static __m256i start(const int8_t*) { return _mm256_setzero_si256(); }
  static __m256i dot(__m256i, const int8_t* w, const int8_t* a) { return dot_i8(load256(w), load256(a)); }
};

// ---- Q4_0 ---------------------------------------------------------------------------------------------

template <int R>
void q4_0_group(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_0* y, float* out, int64_t ostep) {
  const BlockQ4_0* x[R];
  __m256 acc[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const BlockQ4_0*>(w0 + r * stride), acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i a = load256(y[b].qs);
    const float da = half(y[b].d);
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m256i q = _mm256_sub_epi8(nibbles_to_bytes(x[r][b].qs), _mm256_set1_epi8(8));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(half(x[r][b].d) * da), _mm256_cvtepi32_ps(dot_i8(q, a)), acc[r]);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) out[r * ostep] = hsum8(acc[r]);
}

// ---- Q4_K, Q5_K ---------------------------------------------------------------------------------------

// Q4_K (Q5_K when kQ5), R rows: per 64 values, the low nibbles of 32 bytes (scale 2j) and the high nibbles
// (scale 2j+1), as GGML's AVX2 kernel.
template <bool kQ5, int R>
void qk_group(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_K* y, float* out, int64_t ostep) {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  const Block* x[R];
  __m256 acc[R];
  __m128 acc_m[R];
  float summs[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    x[r] = reinterpret_cast<const Block*>(w0 + r * stride);
    acc[r] = _mm256_setzero_ps(), acc_m[r] = _mm_setzero_ps(), summs[r] = 0.0f;
  }
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    const __m128i q8s = _mm_hadd_epi16(load128(y[b].bsums), load128(y[b].bsums + 8));
    const float yd = y[b].d;
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) {
      const Block& xb = x[r][b];
      const __m256i sm16 = _mm256_cvtepu8_epi16(k4_unpack_scales_mins(xb.scales));
      const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), q8s);
      const float dmin = -yd * half(xb.dmin);
      if constexpr (kQ5) {
        const __m128i h = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
        summs[r] = std::fma(dmin, (float)_mm_cvtsi128_si32(h), summs[r]);
      } else {
        acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r]);
      }
      uint16_t sc[8];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(sc), _mm256_castsi256_si128(sm16));
      __m256i hbits;
      if constexpr (kQ5) hbits = load256(xb.qh);
      __m256i sumi = _mm256_setzero_si256();
      PGINFER_UNROLL
      for (int j = 0; j < 4; ++j) {
        const __m256i bits = load256(xb.qs + 32 * j);
        __m256i lo = _mm256_and_si256(bits, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
        if constexpr (kQ5) {
          const __m256i one = _mm256_set1_epi8(1);
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
        }
        const __m256i p0 = _mm256_maddubs_epi16(lo, load256(y[b].qs + 64 * j));
        const __m256i p1 = _mm256_maddubs_epi16(hi, load256(y[b].qs + 64 * j + 32));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_set1_epi16((short)sc[2 * j])));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)sc[2 * j + 1])));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(yd * half(xb.d)), _mm256_cvtepi32_ps(sumi), acc[r]);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) out[r * ostep] = kQ5 ? hsum8(acc[r]) + summs[r] : hsum8(acc[r]) + hsum4(acc_m[r]);
}

// ---- Q6_K ---------------------------------------------------------------------------------------------

// Q6_K, R rows, per 128 values (c) the four 32-value vectors of GGML's AVX2 kernel on the unsigned 6-bit
// quants; the -32 offset is then removed per lane through the block sums, as GGML does.
template <int R>
void q6k_group(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_K* y, float* out, int64_t ostep) {
  const BlockQ6_K* x[R];
  __m256 acc[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const BlockQ6_K*>(w0 + r * stride), acc[r] = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i three = _mm256_set1_epi8(3);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i sumi[R];
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) sumi[r] = _mm256_setzero_si256();
    PGINFER_UNROLL
    for (int c = 0; c < 2; ++c) {
      __m256i a[4];
      PGINFER_UNROLL
      for (int k = 0; k < 4; ++k) a[k] = load256(y[b].qs + 128 * c + 32 * k);
      PGINFER_UNROLL
      for (int r = 0; r < R; ++r) {
        const BlockQ6_K& xb = x[r][b];
        const __m256i l0 = load256(xb.ql + 64 * c);
        const __m256i l1 = load256(xb.ql + 64 * c + 32);
        const __m256i h = load256(xb.qh + 32 * c);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, three), 4)),
            _mm256_or_si256(_mm256_and_si256(l1, low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), three), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), three), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), three), 4)),
        };
        const int8_t* sc = xb.scales + 8 * c;
        PGINFER_UNROLL
        for (int k = 0; k < 4; ++k) {
          const __m256i p = _mm256_maddubs_epi16(q[k], a[k]);
          // Lanes 0-3 cover values 32k..32k+15 (scale 2k), lanes 4-7 values 32k+16.. (scale 2k+1).
          const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, s));
        }
      }
    }
    const __m256i bsums = load256(y[b].bsums);
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) {
      // Lane m: 32 * (bsums[2m] * scale[2m] + bsums[2m+1] * scale[2m+1]).
      const __m256i sc16 = _mm256_cvtepi8_epi16(load128(x[r][b].scales));
      sumi[r] = _mm256_sub_epi32(sumi[r], _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 5));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * half(x[r][b].d)), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) out[r * ostep] = hsum8(acc[r]);
}

// ---- F32, F16, BF16 -----------------------------------------------------------------------------------

// GGML's AVX ggml_vec_dot_f32 / ggml_vec_dot_f16, R rows: 4 accumulators of 8 lanes over steps of 32
// values, GGML_F32x8_REDUCE, leftovers one by one (F32 in float, F16 in double).
template <bool kHalf, int R>
void float_group(int64_t n, const uint8_t* w0, size_t stride, const void* act, float* out, int64_t ostep) {
  const size_t es = kHalf ? 2 : 4;
  const uint8_t* y = static_cast<const uint8_t*>(act);
  auto load = [](const uint8_t* p) {
    if constexpr (kHalf) {
      return _mm256_cvtph_ps(load128(p));
    } else {
      return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    }
  };
  __m256 sum[R][4];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    PGINFER_UNROLL
    for (int j = 0; j < 4; ++j) sum[r][j] = _mm256_setzero_ps();
  }
  const int64_t np = n & ~(int64_t)31;
  for (int64_t i = 0; i < np; i += 32) {
    PGINFER_UNROLL
    for (int j = 0; j < 4; ++j) {
      const __m256 ay = load(y + (i + 8 * j) * es);
      PGINFER_UNROLL
      for (int r = 0; r < R; ++r) sum[r][j] = _mm256_fmadd_ps(load(w0 + r * stride + (i + 8 * j) * es), ay, sum[r][j]);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    const uint8_t* x = w0 + r * stride;
    if constexpr (kHalf) {
      double sumf = reduce_f32x8(sum[r]);
      const uint16_t* xh = reinterpret_cast<const uint16_t*>(x);
      const uint16_t* yh = reinterpret_cast<const uint16_t*>(y);
      for (int64_t i = np; i < n; ++i) sumf += (double)(half(xh[i]) * half(yh[i]));
      out[r * ostep] = (float)sumf;
    } else {
      float sumf = reduce_f32x8(sum[r]);
      const float* xf = reinterpret_cast<const float*>(x);
      const float* yf = reinterpret_cast<const float*>(y);
      // GCC's code for GGML's leftover loop: groups of 8, then one of 4, multiplied then added in order;
      // the last 0-3 values with fused multiply-adds.
      const int64_t rest = n - np, plain = np + (rest & ~(int64_t)7) + ((rest & 7) >= 4 ? 4 : 0);
      for (int64_t i = np; i < plain; ++i) sumf += xf[i] * yf[i];
      for (int64_t i = plain; i < n; ++i) sumf = std::fma(xf[i], yf[i], sumf);
      out[r * ostep] = sumf;
    }
  }
}

inline __m256 load_bf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
}

inline float bf16_scalar(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// GGML's AVX2 ggml_vec_dot_bf16, R rows: accumulators c1..c4 (+= x * y) over steps of 32 values, then
// (c1 + c3) + (c2 + c4) and hsum_float_8, added in double with the leftovers.
template <int R>
void bf16_group(int64_t n, const uint8_t* w0, size_t stride, const void* act, float* out, int64_t ostep) {
  const uint16_t* y = static_cast<const uint16_t*>(act);
  __m256 c[R][4];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    PGINFER_UNROLL
    for (int j = 0; j < 4; ++j) c[r][j] = _mm256_setzero_ps();
  }
  const int64_t np = n & ~(int64_t)31;
  for (int64_t i = 0; i < np; i += 32) {
    PGINFER_UNROLL
    for (int j = 0; j < 4; ++j) {
      const __m256 ay = load_bf16(y + i + 8 * j);
      PGINFER_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint16_t* x = reinterpret_cast<const uint16_t*>(w0 + r * stride);
        c[r][j] = _mm256_add_ps(_mm256_mul_ps(load_bf16(x + i + 8 * j), ay), c[r][j]);
      }
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(w0 + r * stride);
    double sumf = 0;
    if (np > 0) sumf += (double)hsum8(_mm256_add_ps(_mm256_add_ps(c[r][0], c[r][2]), _mm256_add_ps(c[r][1], c[r][3])));
    for (int64_t i = np; i < n; ++i) sumf += (double)(bf16_scalar(x[i]) * bf16_scalar(y[i]));
    out[r * ostep] = (float)sumf;
  }
}

}  // namespace

bool dot_rows_isa_avx2(TensorType type, int64_t n, const uint8_t* w, size_t stride, int64_t rows, const void* act,
                       float* out) {
  switch (type) {
    case TensorType::F32:
      for_row_groups<kGroupF>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        float_group<false, R>(n, w0, rs, act, o, os);
      });
      return true;
    case TensorType::F16:
      for_row_groups<kGroupF>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        float_group<true, R>(n, w0, rs, act, o, os);
      });
      return true;
    case TensorType::BF16:
      for_row_groups<kGroupF>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        bf16_group<R>(n, w0, rs, act, o, os);
      });
      return true;
    case TensorType::Q8_0:
      q8_0_rows<Q8_0BlockDotAvx2>(n, w, stride, rows, static_cast<const BlockQ8_0*>(act), out);
      return true;
    case TensorType::Q4_0: {
      const BlockQ8_0* y = static_cast<const BlockQ8_0*>(act);
      const int64_t nb = n / kQK8_0;
      for_row_groups<kGroupQ>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        q4_0_group<R>(nb, w0, rs, y, o, os);
      });
      return true;
    }
    case TensorType::Q4_K:
    case TensorType::Q5_K: {
      const BlockQ8_K* y = static_cast<const BlockQ8_K*>(act);
      const int64_t nb = n / kQK_K;
      if (type == TensorType::Q4_K) {
        for_row_groups<kGroupQ>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
          qk_group<false, R>(nb, w0, rs, y, o, os);
        });
      } else {
        for_row_groups<kGroupQ>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
          qk_group<true, R>(nb, w0, rs, y, o, os);
        });
      }
      return true;
    }
    case TensorType::Q6_K: {
      const BlockQ8_K* y = static_cast<const BlockQ8_K*>(act);
      const int64_t nb = n / kQK_K;
      for_row_groups<kGroupF>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        q6k_group<R>(nb, w0, rs, y, o, os);
      });
      return true;
    }
    default: return false;
  }
}

}  // namespace pginfer
