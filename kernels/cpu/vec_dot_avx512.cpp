// kernels/cpu/vec_dot_avx512.cpp: row dots with AVX-512 (F, BW, VL, DQ), several weight rows per pass.
//
// Every result is bit-identical to what llama.cpp's AVX-512 CPU build (GGML's "zen4" variant) computes
// for one row with ggml_vec_dot_*, because each row goes through the same float operations in the same
// order; only the integer work, which is exact, is arranged differently:
//  - Q8_0 is the exception: it follows our block-exact order (vec_dot_q8_0.h), computed by the VNNI kernels
//    (vec_dot_avx512vnni.cpp) when the machine has VNNI, else by the AVX2 ones.
//  - Q4_0: per 32-value block, 8 lanes of 4-product integer sums, converted to float and accumulated
//    as acc = fma(d_w * d_a, sums, acc), then GGML's hsum_float_8. Two rows share one 512-bit register
//    (one row per 256-bit half), so each row's lanes see exactly GGML's sequence.
//  - Q4_K, Q5_K, Q6_K: per super-block, GGML's 8 lanes of integer sums (each lane: 4 consecutive values
//    of every 32, scaled per sub-block; Q6_K minus its per-lane offset term) are built from 512-bit halves
//    that are added as integers, then acc = fma(d, sums, acc); the Q4_K/Q5_K mins term goes through
//    GGML's 4-lane (Q4_K) or scalar (Q5_K) accumulator.
//  - F32, F16: GGML's AVX-512 loop: 4 accumulators of 16 lanes, 64 values a step, its reduction tree.
//  - BF16: GGML's AVX512-BF16 loop (two vdpbf16ps accumulators), emulated with FMAs in vdpbf16ps's
//    order (odd element, then even); bfloat16 products are exact in float, so only denormals, which
//    vdpbf16ps flushes, could differ.
// Activation rows are loaded once per group of rows and reused from registers.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/k_quants_avx512.h"
#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/vec_dot_impl.h"

// Small loops over rows and chunks must be unrolled so that their accumulators stay in registers (-O2 alone
// keeps them in memory).
#define PGINFER_UNROLL _Pragma("GCC unroll 16")

// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512 intrinsics
// (_mm512_undefined_*) as maybe-uninitialized; nothing of ours is.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pginfer {

namespace {

// Rows computed side by side, from as many bands of the matrix (see for_row_groups). Four measured best
// (tests/bench/bench_vec_dot.cpp): enough independent accumulator chains to hide latencies, few streams.
constexpr int kGroupQ0 = 4, kGroupK = 4, kGroupF = 4;

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
// The same 32 bytes in both halves.
inline __m512i bcast256(const void* p) { return _mm512_broadcast_i64x4(load256(p)); }

// The same tree on 4 lanes (GGML's reduction of the Q4_K mins accumulator).
inline float hsum4(__m128 r) {
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

// _mm512_reduce_add_ps's tree (halves, quarters, then lanes 0+2 and 1+3, then their sum), written out so
// that the order does not depend on the compiler.
inline float hsum16(__m512 x) {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(x, 1), _mm512_castps512_ps256(x));
  __m128 q = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// Masks of the 16-bit elements in the low and high 256 bits.
constexpr __mmask32 kLowHalf16 = 0x0000ffffu, kHighHalf16 = 0xffff0000u;

// The two 256-bit halves of 16 int32 lanes added: GGML's 8 lanes.
inline __m256i fold(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

// ---- Q4_0 ---------------------------------------------------------------------------------------------

// Lanes 0-7 = s[0], lanes 8-15 = s[1].
inline __m512 spread_pair(__m128 s) {
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
}

// The block scales of two rows times the activation's, as GGML forms them: float(d_w) * float(d_a).
inline __m512 pair_scales(uint16_t d0, uint16_t d1, __m128 da) {
  const __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | ((uint32_t)d1 << 16))));
  return spread_pair(_mm_mul_ps(dw, da));
}

// Q4_0: rows in pairs, one row per 256-bit half.
template <int P>
void q4_0_pairs(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_0* y, float* out, int64_t ostep) {
  const BlockQ4_0* x[2 * P];
  PGINFER_UNROLL
  for (int i = 0; i < 2 * P; ++i) x[i] = reinterpret_cast<const BlockQ4_0*>(w0 + i * stride);
  __m512 acc[P];
  PGINFER_UNROLL
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i a = bcast256(y[b].qs);
    const __m128 da = _mm_set1_ps(half(y[b].d));
    // sum(q * a) - 8 * sum(a) per lane, which is GGML's sum((q - 8) * a).
    const __m512i a8 = _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_set1_epi8(8), a), _mm512_set1_epi16(1));
    PGINFER_UNROLL
    for (int p = 0; p < P; ++p) {
      const BlockQ4_0& b0 = x[2 * p][b];
      const BlockQ4_0& b1 = x[2 * p + 1][b];
      const __m512i both = _mm512_inserti32x4(_mm512_castsi128_si512(load128(b0.qs)), load128(b1.qs), 2);
      const __m512i dup = _mm512_shuffle_i32x4(both, both, 0xa0);  // lanes 0,0,2,2; high nibbles in 1 and 3
      const __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(dup, 0xff00ff00u, dup, 4), low4);
      const __m512i sums = _mm512_sub_epi32(_mm512_madd_epi16(_mm512_maddubs_epi16(q, a), _mm512_set1_epi16(1)), a8);
      acc[p] = _mm512_fmadd_ps(pair_scales(b0.d, b1.d, da), _mm512_cvtepi32_ps(sums), acc[p]);
    }
  }
  PGINFER_UNROLL
  for (int p = 0; p < P; ++p) {
    out[2 * p * ostep] = hsum8(_mm512_castps512_ps256(acc[p]));
    out[(2 * p + 1) * ostep] = hsum8(_mm512_extractf32x8_ps(acc[p], 1));
  }
}

// One row in a 256-bit register: the same lanes and operations as one half of q4_0_pairs.
float q4_0_single(int64_t nb, const uint8_t* w, const BlockQ8_0* y) {
  const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(w);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i a = load256(y[b].qs);
    const __m128i t = load128(x[b].qs);
    const __m256i q = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1),
                                       _mm256_set1_epi8(0x0f));
    const __m256i a8 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), a), _mm256_set1_epi16(1));
    const __m256i sums = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(q, a), _mm256_set1_epi16(1)), a8);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half(x[b].d) * half(y[b].d)), _mm256_cvtepi32_ps(sums), acc);
  }
  return hsum8(acc);
}

template <int R>
void q4_0_group(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_0* y, float* out, int64_t ostep) {
  if constexpr (R == 1) {
    out[0] = q4_0_single(nb, w0, y);
  } else {
    q4_0_pairs<R / 2>(nb, w0, stride, y, out, ostep);
  }
}

// ---- Q4_K and Q5_K ------------------------------------------------------------------------------------

// Byte shuffles picking, from 8 int16 scales repeated in every 128-bit lane, scale 2j for the low 256
// bits and scale 2j+1 for the high 256 bits (j = 0..3).
inline __m512i k4_scale_shuffle(int j) {
  const char lo0 = (char)(4 * j), lo1 = (char)(4 * j + 1), hi0 = (char)(4 * j + 2), hi1 = (char)(4 * j + 3);
  return _mm512_set_epi8(hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0,  //
                         hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0,  //
                         lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0,  //
                         lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0);
}

// Q4_K (or Q5_K when kQ5), R rows. Chunk j of 64 values is one register: its low half holds the low
// nibbles of qs[32j..32j+31] (values 64j..64j+31, scale 2j), its high half the high nibbles (values
// 64j+32..64j+63, scale 2j+1), so the activations are read in their natural order.
template <bool kQ5, int R>
void qk_group(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_K* y, float* out, int64_t ostep) {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  const Block* x[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const Block*>(w0 + r * stride);
  __m256 acc[R];
  __m128 acc_m[R];  // Q4_K: GGML's 4-lane mins accumulator
  float summs[R];   // Q5_K: GGML's scalar mins accumulator
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), acc_m[r] = _mm_setzero_ps(), summs[r] = 0.0f;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i sh0 = k4_scale_shuffle(0), sh1 = k4_scale_shuffle(1), sh2 = k4_scale_shuffle(2),
                sh3 = k4_scale_shuffle(3);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i a[4] = {load512(y[b].qs), load512(y[b].qs + 64), load512(y[b].qs + 128), load512(y[b].qs + 192)};
    const __m128i q8s = _mm_hadd_epi16(load128(y[b].bsums), load128(y[b].bsums + 8));
    const float yd = y[b].d;
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) {
      const Block& xb = x[r][b];
      const __m128i sm = k4_unpack_scales_mins(xb.scales);
      const __m256i sm16 = _mm256_cvtepu8_epi16(sm);  // scales 0-7, mins 8-15, as int16
      const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), q8s);
      const float dmin = -yd * half(xb.dmin);
      if constexpr (kQ5) {
        const __m128i h = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
        summs[r] = std::fma(dmin, (float)_mm_cvtsi128_si32(h), summs[r]);
      } else {
        acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r]);
      }
      const __m512i sc = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm16));
      const __m512i scale[4] = {_mm512_shuffle_epi8(sc, sh0), _mm512_shuffle_epi8(sc, sh1),
                                _mm512_shuffle_epi8(sc, sh2), _mm512_shuffle_epi8(sc, sh3)};
      __m512i qh;
      if constexpr (kQ5) qh = bcast256(xb.qh);
      __m512i sumi = _mm512_setzero_si512();
      PGINFER_UNROLL
      for (int j = 0; j < 4; ++j) {
        const __m512i bits = bcast256(xb.qs + 32 * j);
        __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(bits, kHighHalf16, bits, 4), low4);
        if constexpr (kQ5) {
          // Fifth bit: bit 2j of qh[l] for the low half, bit 2j+1 for the high half.
          const __m512i bit =
              _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * j))), _mm256_set1_epi8((char)(1 << (2 * j + 1))), 1);
          q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(qh, bit), q, _mm512_set1_epi8(16));
        }
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_maddubs_epi16(q, a[j]), scale[j]));
      }
      const float d = yd * half(xb.d);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold(sumi)), acc[r]);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) out[r * ostep] = kQ5 ? hsum8(acc[r]) + summs[r] : hsum8(acc[r]) + hsum4(acc_m[r]);
}

// ---- Q6_K ---------------------------------------------------------------------------------------------

// Q6_K, R rows. Chunk c of 128 values gives two registers of 64 values in natural order: the low nibbles
// of ql[64c..64c+63] (values 128c..128c+63) and their high nibbles (values 128c+64..128c+127); the two
// high bits come from qh[32c..32c+31] shifted per half. The products use the unsigned quants; the -32
// offset is then removed per lane through the block sums exactly as GGML's kernel does.
template <int R>
void q6k_group(int64_t nb, const uint8_t* w0, size_t stride, const BlockQ8_K* y, float* out, int64_t ostep) {
  const BlockQ6_K* x[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) x[r] = reinterpret_cast<const BlockQ6_K*>(w0 + r * stride);
  __m256 acc[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  // Scales: element e of register v (values 64v..64v+63) is the scale of sub-block 4v + e/8.
  const __m512i sidx[4] = {
      _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
      _mm512_set_epi16(7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4),
      _mm512_set_epi16(11, 11, 11, 11, 11, 11, 11, 11, 10, 10, 10, 10, 10, 10, 10, 10, 9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8,
                       8, 8, 8, 8, 8),
      _mm512_set_epi16(15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 14, 14, 14, 14, 14, 14, 13, 13, 13, 13, 13, 13, 13, 13,
                       12, 12, 12, 12, 12, 12, 12, 12)};
  for (int64_t b = 0; b < nb; ++b) {
    __m512i a[4];
    PGINFER_UNROLL
    for (int v = 0; v < 4; ++v) a[v] = load512(y[b].qs + 64 * v);
    const __m256i bsums = load256(y[b].bsums);
    const float yd = y[b].d;
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K& xb = x[r][b];
      const __m256i sc16y = _mm256_cvtepi8_epi16(load128(xb.scales));
      const __m512i sc16 = _mm512_castsi256_si512(sc16y);
      __m512i sumi = _mm512_setzero_si512();
      PGINFER_UNROLL
      for (int c = 0; c < 2; ++c) {
        __m512i q0, q1;
        q6k_quants(xb, c, &q0, &q1);
        const __m512i p0 = _mm512_maddubs_epi16(q0, a[2 * c]);
        const __m512i p1 = _mm512_maddubs_epi16(q1, a[2 * c + 1]);
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p0, _mm512_permutexvar_epi16(sidx[2 * c], sc16)));
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p1, _mm512_permutexvar_epi16(sidx[2 * c + 1], sc16)));
      }
      // Lane m loses 32 * (bsums[2m] * scale[2m] + bsums[2m+1] * scale[2m+1]).
      const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16y), 5);
      const float d = yd * half(xb.d);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(fold(sumi), offset)), acc[r]);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) out[r * ostep] = hsum8(acc[r]);
}

// ---- F32, F16, BF16 -----------------------------------------------------------------------------------

inline __m512 load_f32(const void* p) { return _mm512_loadu_ps(p); }
inline __m512 load_f16(const void* p) { return _mm512_cvtph_ps(load256(p)); }

// GGML's AVX-512 ggml_vec_dot_f32 / ggml_vec_dot_f16 for R rows: per row 4 accumulators of 16 lanes over
// steps of 64 values, reduced (0+2, 1+3, then 0+1) and summed by _mm512_reduce_add_ps's tree; leftover
// values are added one by one (F32 in float, F16 in double).
template <bool kHalf, int R>
void float_group(int64_t n, const uint8_t* w0, size_t stride, const void* act, float* out, int64_t ostep) {
  const size_t es = kHalf ? 2 : 4;
  const uint8_t* y = static_cast<const uint8_t*>(act);
  auto load = [](const uint8_t* p) { return kHalf ? load_f16(p) : load_f32(p); };
  __m512 sum[R][4];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    PGINFER_UNROLL
    for (int j = 0; j < 4; ++j) sum[r][j] = _mm512_setzero_ps();
  }
  const int64_t np = n & ~(int64_t)63;
  for (int64_t i = 0; i < np; i += 64) {
    PGINFER_UNROLL
    for (int j = 0; j < 4; ++j) {
      const __m512 ay = load(y + (i + 16 * j) * es);
      PGINFER_UNROLL
      for (int r = 0; r < R; ++r) {
        sum[r][j] = _mm512_fmadd_ps(load(w0 + r * stride + (i + 16 * j) * es), ay, sum[r][j]);
      }
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    __m512* s = sum[r];
    s[0] = _mm512_add_ps(s[0], s[2]);
    s[1] = _mm512_add_ps(s[1], s[3]);
    s[0] = _mm512_add_ps(s[0], s[1]);
    const uint8_t* x = w0 + r * stride;
    if constexpr (kHalf) {
      double sumf = hsum16(s[0]);
      const uint16_t* xh = reinterpret_cast<const uint16_t*>(x);
      const uint16_t* yh = reinterpret_cast<const uint16_t*>(y);
      for (int64_t i = np; i < n; ++i) sumf += (double)(half(xh[i]) * half(yh[i]));
      out[r * ostep] = (float)sumf;
    } else {
      float sumf = hsum16(s[0]);
      const float* xf = reinterpret_cast<const float*>(x);
      const float* yf = reinterpret_cast<const float*>(y);
      // GCC's code for GGML's leftover loop: groups of 16, then one of 8, multiplied then added in order;
      // the last 0-7 values with fused multiply-adds.
      const int64_t rest = n - np, plain = np + (rest & ~(int64_t)15) + ((rest & 15) >= 8 ? 8 : 0);
      for (int64_t i = np; i < plain; ++i) sumf += xf[i] * yf[i];
      for (int64_t i = plain; i < n; ++i) sumf = std::fma(xf[i], yf[i], sumf);
      out[r * ostep] = sumf;
    }
  }
}

inline float bf16_scalar(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// vdpbf16ps emulated: per 32-bit lane, acc += x_odd * y_odd, then acc += x_even * y_even.
inline __m512 dpbf16(__m512 acc, __m512i x, __m512i y) {
  const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
  acc =
      _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(x, hi)), _mm512_castsi512_ps(_mm512_and_si512(y, hi)), acc);
  return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(x, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(y, 16)),
                         acc);
}

// GGML's AVX512-BF16 ggml_vec_dot_bf16 for R rows: accumulators c1 (values i..i+31) and c2 (i+32..i+63),
// each reduced by _mm512_reduce_add_ps's tree and added in double; leftovers in double.
template <int R>
void bf16_group(int64_t n, const uint8_t* w0, size_t stride, const void* act, float* out, int64_t ostep) {
  const uint16_t* y = static_cast<const uint16_t*>(act);
  __m512 c1[R], c2[R];
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) c1[r] = c2[r] = _mm512_setzero_ps();
  const int64_t np = n & ~(int64_t)63;
  for (int64_t i = 0; i < np; i += 64) {
    const __m512i y1 = load512(y + i), y2 = load512(y + i + 32);
    PGINFER_UNROLL
    for (int r = 0; r < R; ++r) {
      const uint16_t* x = reinterpret_cast<const uint16_t*>(w0 + r * stride);
      c1[r] = dpbf16(c1[r], load512(x + i), y1);
      c2[r] = dpbf16(c2[r], load512(x + i + 32), y2);
    }
  }
  PGINFER_UNROLL
  for (int r = 0; r < R; ++r) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(w0 + r * stride);
    double sumf = 0;
    sumf += (double)hsum16(c1[r]);
    sumf += (double)hsum16(c2[r]);
    for (int64_t i = np; i < n; ++i) sumf += (double)(bf16_scalar(x[i]) * bf16_scalar(y[i]));
    out[r * ostep] = (float)sumf;
  }
}

}  // namespace

bool dot_rows_isa_avx512(TensorType type, int64_t n, const uint8_t* w, size_t stride, int64_t rows, const void* act,
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
      // Our block-exact order (vec_dot_q8_0.h), with VNNI when the machine has it.
      if (has_avx512_vnni()) {
        dot_q8_0_rows_vnni(n, w, stride, rows, act, out);
        return true;
      }
      return dot_rows_isa_avx2(type, n, w, stride, rows, act, out);
    case TensorType::Q4_0: {
      const BlockQ8_0* y = static_cast<const BlockQ8_0*>(act);
      const int64_t nb = n / kQK8_0;
      for_row_groups<kGroupQ0>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        q4_0_group<R>(nb, w0, rs, y, o, os);
      });
      return true;
    }
    case TensorType::Q4_K:
    case TensorType::Q5_K: {
      const BlockQ8_K* y = static_cast<const BlockQ8_K*>(act);
      const int64_t nb = n / kQK_K;
      if (type == TensorType::Q4_K) {
        for_row_groups<kGroupK>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
          qk_group<false, R>(nb, w0, rs, y, o, os);
        });
      } else {
        for_row_groups<kGroupK>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
          qk_group<true, R>(nb, w0, rs, y, o, os);
        });
      }
      return true;
    }
    case TensorType::Q6_K: {
      const BlockQ8_K* y = static_cast<const BlockQ8_K*>(act);
      const int64_t nb = n / kQK_K;
      for_row_groups<kGroupK>(rows, w, stride, out, [&]<int R>(const uint8_t* w0, size_t rs, float* o, int64_t os) {
        q6k_group<R>(nb, w0, rs, y, o, os);
      });
      return true;
    }
    default: return false;
  }
}

}  // namespace pginfer
