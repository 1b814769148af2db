// kernels/cpu/vec_dot_k_avx512vnni.cpp: Q4_K, Q5_K and Q6_K rows times many tokens with AVX-512 VNNI, in
// GGML's order.
//
// GGML's one-token K-quant dots (and ours, vec_dot_avx512.cpp) keep 8 integer lanes per 256-value
// super-block. Lane m sums scale * q * a over the values 32u + 4m .. 32u + 4m + 3 of every 32 (u = 0..7);
// Q6_K's lane then loses 32 * (the activation sums of 16-value blocks 2m and 2m + 1 times their scales).
// Block after block, acc_m = fma(d_w * d_a, lane m, acc_m); Q4_K's mins term goes through 4 more lanes,
// acc_k = fma(-d_a * dmin_w, mins[2k] * S[2k] + mins[2k + 1] * S[2k + 1], acc_k) with S the 32-value
// activation sums, Q5_K's through one, fma(-d_a * dmin_w, the sum of those 4 integers, acc); GGML's trees
// sum the lanes at the end.
//
// Here the lanes of a register are tokens. A super-block's weights are multiplied by their scales into 256
// int16 once per product (q * scale fits: at most 31 * 63 for Q4_K and Q5_K, 63 * 128 for Q6_K; rows are
// scaled in chunks that stay in L2 while every token passes), and one vpdpwssd multiplies a pair of them,
// broadcast, by the same pair of values of 16 tokens' activations, packed once per product as int16 pairs
// (pack_k_tokens_vnni). Lane m takes the pairs 16u + 2m + k (k = 0, 1) in every type.
// Integer sums are exact in any order, so each token's lanes, their multiply-adds and the trees are the
// one-token kernel's: results are bit-identical to dot_rows (vec_dot_test).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/k_quants_avx512.h"
#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/vec_dot_impl.h"
#include "kernels/cpu/vnni_lanes.h"

// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512 intrinsics
// (_mm512_undefined_*) as maybe-uninitialized; nothing of ours is.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pginfer {

namespace {

using vnni::kPackedTokens;

// One Q8_K super-block of 16 tokens, packed. Each int32 holds two int16, the first in its low half. Lanes
// past the last token hold zeros.
struct PackedQ8K {
  int32_t pairs[kQK_K / 2][16];  // pair P of token t: values 2P and 2P + 1
  int32_t bsum_pairs[8][16];     // Q6_K's offsets: bsums 2m and 2m + 1
  int32_t sub_pairs[4][16];      // Q4_K/Q5_K's mins: 32-value sums S[2k] and S[2k + 1] (bsums added in pairs)
  float d[16];                   // the block's scale
};

// Two int16 as one int32, `lo` in the low half.
inline int32_t pair16(int32_t lo, int32_t hi) { return (int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo); }

// One row's super-block, ready for the lanes: its 256 scaled quants as int16 pairs in value order, the
// scale factors, and the pairs of its lanes' extra terms (Q4_K, Q5_K: mins 2k, 2k + 1; Q6_K: scales 2m,
// 2m + 1).
struct ScaledBlock {
  alignas(64) int16_t w[kQK_K];
  int32_t extra[8];
  float d;     // d_w
  float dmin;  // Q4_K, Q5_K: -dmin_w
  const int32_t* pairs() const { return reinterpret_cast<const int32_t*>(w); }
};

// A Q4_K or Q5_K super-block (Block): values 64j..64j+31 are the low nibbles of qs[32j..32j+31] (scale 2j),
// the next 32 their high nibbles (scale 2j+1); Q5_K adds 16 where bit 2j (low) or 2j+1 (high) of qh[l] is set
// for value 64j + l (or 64j + 32 + l).
template <class Block>
inline void scale_block(const Block& x, ScaledBlock* s) {
  constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
  alignas(16) uint8_t sm[16];  // scales 0-7, mins 8-15
  _mm_store_si128(reinterpret_cast<__m128i*>(sm), k4_unpack_scales_mins(x.scales));
  const __m512i low4 = _mm512_set1_epi16(0x0f);
  const __m512i one = _mm512_set1_epi16(1);
  __m512i qh = _mm512_setzero_si512();
  if constexpr (kQ5) qh = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh)));
  for (int j = 0; j < 4; ++j) {
    const __m512i q = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j)));
    __m512i lo = _mm512_and_si512(q, low4), hi = _mm512_srli_epi16(q, 4);
    if constexpr (kQ5) {
      lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 2 * j), one), 4));
      hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qh, 2 * j + 1), one), 4));
    }
    _mm512_store_si512(s->w + 64 * j, _mm512_mullo_epi16(lo, _mm512_set1_epi16(sm[2 * j])));
    _mm512_store_si512(s->w + 64 * j + 32, _mm512_mullo_epi16(hi, _mm512_set1_epi16(sm[2 * j + 1])));
  }
  for (int k = 0; k < 4; ++k) s->extra[k] = pair16(sm[8 + 2 * k], sm[9 + 2 * k]);
  s->d = half(x.d);
  s->dmin = -half(x.dmin);
}

// A Q6_K super-block: its unsigned quants (q6k_quants) times the scales of their 16-value blocks.
inline void scale_block(const BlockQ6_K& x, ScaledBlock* s) {
  for (int c = 0; c < 2; ++c) {
    __m512i q[2];  // values 128c..128c+63, 128c+64..128c+127
    q6k_quants(x, c, &q[0], &q[1]);
    for (int h = 0; h < 2; ++h) {
      for (int half_ = 0; half_ < 2; ++half_) {
        // Values v0..v0+31: 16-value blocks v0 / 16 and v0 / 16 + 1.
        const int v0 = 128 * c + 64 * h + 32 * half_;
        const __m256i bytes = half_ ? _mm512_extracti64x4_epi64(q[h], 1) : _mm512_castsi512_si256(q[h]);
        const __m512i scale = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(x.scales[v0 / 16]),
                                                      _mm512_set1_epi16(x.scales[v0 / 16 + 1]));
        _mm512_store_si512(s->w + v0, _mm512_mullo_epi16(_mm512_cvtepu8_epi16(bytes), scale));
      }
    }
  }
  for (int m = 0; m < 8; ++m) s->extra[m] = pair16(x.scales[2 * m], x.scales[2 * m + 1]);
  s->d = half(x.d);
  s->dmin = 0.0f;
}

// Bytes of scaled super-blocks prepared at once: rows of a chunk are scaled once, then every token group
// passes over them while they stay in L2.
constexpr size_t kScaledBytes = 256 * 1024;

// Scaled rows w0 + i * step (i < R; nb ScaledBlocks each) times the tokens of one packed group (n_valid of
// them), results to out[t * ldo + i * ostep].
template <class V, class Block, int R>
void k_tile(int64_t nb, const uint8_t* w0, size_t step, const PackedQ8K* p, int64_t n_valid, float* out,
            int64_t ostep, int64_t ldo) {
  constexpr bool kQ4 = std::is_same_v<Block, BlockQ4_K>, kQ5 = std::is_same_v<Block, BlockQ5_K>;
  constexpr bool kQ6 = std::is_same_v<Block, BlockQ6_K>;
  const ScaledBlock* x[R];
  typename V::F acc[R][8], acc_min[R][4];  // Q5_K uses acc_min[i][0] only
  _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
    x[i] = reinterpret_cast<const ScaledBlock*>(w0 + i * step);
    _Pragma("GCC unroll 8") for (int m = 0; m < 8; ++m) acc[i][m] = V::zerof();
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) acc_min[i][k] = V::zerof();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ8K& pb = p[b];
    const typename V::F da = V::loadf(pb.d);
    _Pragma("GCC unroll 8") for (int m = 0; m < 8; ++m) {
      // Two integer chains per row (pairs k = 0 and k = 1), so that 2R multiply-adds are in flight.
      typename V::I s[2][R];
      _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
        s[1][i] = V::zero();
        if constexpr (!kQ6) {
          s[0][i] = V::zero();
        } else {  // minus 32 * (bsums 2m, 2m + 1 times scales 2m, 2m + 1)
          s[0][i] = V::sub(V::zero(), V::shl5(V::dpwssd(V::zero(), V::set1(x[i][b].extra[m]), V::load(pb.bsum_pairs[m]))));
        }
      }
      _Pragma("GCC unroll 8") for (int u = 0; u < 8; ++u) {
        _Pragma("GCC unroll 2") for (int k = 0; k < 2; ++k) {
          const int pair = 16 * u + 2 * m + k;
          const typename V::I a = V::load(pb.pairs[pair]);
          _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
            s[k][i] = V::dpwssd(s[k][i], V::set1(x[i][b].pairs()[pair]), a);
          }
        }
      }
      _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
        acc[i][m] = V::fmadd(V::mul(da, V::set1f(x[i][b].d)), V::cvt(V::add(s[0][i], s[1][i])), acc[i][m]);
      }
    }
    if constexpr (kQ4) {
      _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
        const typename V::F dmin = V::mul(da, V::set1f(x[i][b].dmin));  // -d_a * dmin_w
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) {
          const typename V::I prod = V::dpwssd(V::zero(), V::set1(x[i][b].extra[k]), V::load(pb.sub_pairs[k]));
          acc_min[i][k] = V::fmadd(dmin, V::cvt(prod), acc_min[i][k]);
        }
      }
    } else if constexpr (kQ5) {
      _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
        typename V::I all = V::zero();
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) {
          all = V::dpwssd(all, V::set1(x[i][b].extra[k]), V::load(pb.sub_pairs[k]));
        }
        acc_min[i][0] = V::fmadd(V::mul(da, V::set1f(x[i][b].dmin)), V::cvt(all), acc_min[i][0]);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
    // hsum_float_8's tree, lane by lane: ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)); Q4_K adds the
    // mins lanes' tree (k0 + k2) + (k1 + k3), Q5_K its one mins accumulator.
    const typename V::F* a = acc[i];
    typename V::F sum = V::addf(V::addf(V::addf(a[4], a[0]), V::addf(a[6], a[2])),
                                V::addf(V::addf(a[5], a[1]), V::addf(a[7], a[3])));
    const typename V::F* c = acc_min[i];
    if constexpr (kQ4) sum = V::addf(sum, V::addf(V::addf(c[0], c[2]), V::addf(c[1], c[3])));
    if constexpr (kQ5) sum = V::addf(sum, c[0]);
    vnni::store_tokens<V>(sum, n_valid, out + i * ostep, ldo);
  }
}

// Chunks of rows: each scaled once (kScaledBytes), then packed groups outside and rows inside
// (vnni::for_packed_groups).
template <class Block>
void dot_k_packed(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                  int64_t n_tokens, float* out, int64_t ldo) {
  const int64_t nb = n / kQK_K;
  const size_t scaled_stride = (size_t)nb * sizeof(ScaledBlock);
  const int64_t chunk = std::max<int64_t>(4, (int64_t)(kScaledBytes / scaled_stride) / 4 * 4);
  thread_local std::vector<ScaledBlock> scaled;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    if ((int64_t)scaled.size() < nr * nb) scaled.resize((size_t)(nr * nb));
    for (int64_t r = 0; r < nr; ++r) {
      const Block* x = reinterpret_cast<const Block*>(w + (r0 + r) * row_stride);
      for (int64_t b = 0; b < nb; ++b) scale_block(x[b], &scaled[(size_t)(r * nb + b)]);
    }
    vnni::for_packed_groups<4>(reinterpret_cast<const uint8_t*>(scaled.data()), scaled_stride, nr,
                               reinterpret_cast<const PackedQ8K*>(packed), nb, n_tokens, out + r0, ldo,
                               [&]<class V, int R>(const uint8_t* w0, size_t step, const PackedQ8K* g, int64_t valid,
                                                   float* o, int64_t os) {
                                 k_tile<V, Block, R>(nb, w0, step, g, valid, o, os, ldo);
                               });
  }
}

// Token `lane` of packed block g from activation block y: its values in int16 pairs, its bsums in pairs, the
// 32-value sums in pairs as GGML's _mm_hadd_epi16 forms them (int16 sums; they fit: 32 * 127), its scale.
void pack_lane(PackedQ8K& g, const BlockQ8_K& y, int lane) {
  for (int P = 0; P < kQK_K / 2; ++P) g.pairs[P][lane] = pair16(y.qs[2 * P], y.qs[2 * P + 1]);
  const int16_t* bs = y.bsums;
  for (int m = 0; m < 8; ++m) g.bsum_pairs[m][lane] = pair16(bs[2 * m], bs[2 * m + 1]);
  for (int k = 0; k < 4; ++k) {
    g.sub_pairs[k][lane] = pair16((int16_t)(bs[4 * k] + bs[4 * k + 1]), (int16_t)(bs[4 * k + 2] + bs[4 * k + 3]));
  }
  g.d[lane] = y.d;
}

}  // namespace

void pack_k_tokens_vnni(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                        std::vector<uint8_t>* packed) {
  vnni::pack_token_groups<PackedQ8K, BlockQ8_K>(n / kQK_K, acts, act_stride, n_tokens, packed, pack_lane);
}

void dot_q4_k_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo) {
  dot_k_packed<BlockQ4_K>(n, w, row_stride, rows, packed, n_tokens, out, ldo);
}

void dot_q5_k_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo) {
  dot_k_packed<BlockQ5_K>(n, w, row_stride, rows, packed, n_tokens, out, ldo);
}

void dot_q6_k_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo) {
  dot_k_packed<BlockQ6_K>(n, w, row_stride, rows, packed, n_tokens, out, ldo);
}

}  // namespace pginfer
