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
// Here the lanes of a register are tokens. Lane m's integer is a sum over 64-value groups j of scale * T
// for the two 32-value halves of j, T the sum of 4 products (values 4m..4m+3 of the half). A row's unsigned
// quants and the tokens' activations are both interleaved so that one 32-bit word holds values 4m + 2h, + 1
// of each half (interleave_quads); one vpmaddubsw per word (h = 0, 1) gives two int16 per token, their sum
// both halves' T (at most 4 * 63 * 128: exact in int16), and one vpdpwssd adds them times the halves' scales.
// A row's words and scale pairs are prepared once per product (rows in chunks that stay in L2 while every
// token group passes); the activations once per product (pack_k_tokens_vnni). Integer sums are exact in any
// order, so each token's lanes, their multiply-adds and the trees are the one-token kernel's: results are
// bit-identical to dot_rows (vec_dot_test).
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

// One Q8_K super-block of 16 tokens, packed. quads[j][2m + h][t] holds token t's values 64j + 4m + 2h,
// + 1, 64j + 32 + 4m + 2h, + 1 as 4 bytes (interleave_quads); the other words hold two int16, the first in
// the low half. Lanes past the last token hold zeros.
struct PackedQ8K {
  int32_t quads[4][16][16];
  int32_t bsum_pairs[8][16];  // Q6_K's offsets: bsums 2m and 2m + 1
  int32_t sub_pairs[4][16];   // Q4_K/Q5_K's mins: 32-value sums S[2k] and S[2k + 1] (bsums added in pairs)
  float d[16];                // the block's scale
};

// The 16 words of 64 values whose first 32 are `lo` and last 32 `hi` (bytes): word i = 2m + h holds values
// 4m + 2h, 4m + 2h + 1 of lo and the same two of hi, so that vpmaddubsw gives, per word, one int16 from
// each half, and two words (h = 0, 1) added give both halves' sums over 4m..4m+3.
inline void interleave_quads(__m256i lo, __m256i hi, int32_t* out) {
  const __m256i x = _mm256_unpacklo_epi16(lo, hi), y = _mm256_unpackhi_epi16(lo, hi);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(x, y, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), _mm256_permute2x128_si256(x, y, 0x31));
}

// Two int16 as one int32, `lo` in the low half.
inline int32_t pair16(int32_t lo, int32_t hi) { return (int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo); }

// One row's super-block, ready for the lanes: its unsigned quants interleaved as the activations are
// (quads[j][2m + h]), the pairs of scales that multiply the two int16 each pair of words gives (for lane m of
// 64-value group j: values 64j + 4m.. and 64j + 32 + 4m..), the pairs of its lanes' extra terms (Q4_K, Q5_K:
// mins 2k, 2k + 1; Q6_K: scales 2m, 2m + 1) and the scale factors.
struct PreparedBlock {
  int32_t quads[4][16];
  int32_t scale_pairs[4][8];
  int32_t extra[8];
  float d;     // d_w
  float dmin;  // Q4_K, Q5_K: -dmin_w
};

// A Q4_K or Q5_K super-block (Block): values 64j..64j+31 are the low nibbles of qs[32j..32j+31] (scale 2j),
// the next 32 their high nibbles (scale 2j+1); Q5_K adds 16 where bit 2j (low) or 2j+1 (high) of qh[l] is set
// for value 64j + l (or 64j + 32 + l).
template <class Block>
inline void prepare_block(const Block& x, PreparedBlock* s) {
  constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
  alignas(16) uint8_t sm[16];  // scales 0-7, mins 8-15
  _mm_store_si128(reinterpret_cast<__m128i*>(sm), k4_unpack_scales_mins(x.scales));
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256i qh = _mm256_setzero_si256();
  if constexpr (kQ5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh));
  for (int j = 0; j < 4; ++j) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * j));
    __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    if constexpr (kQ5) {
      const __m256i bit_lo = _mm256_set1_epi8((char)(1 << (2 * j))), bit_hi = _mm256_set1_epi8((char)(2 << (2 * j)));
      const __m256i sixteen = _mm256_set1_epi8(16);
      lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen));
      hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen));
    }
    interleave_quads(lo, hi, s->quads[j]);
    const __m256i scales = _mm256_set1_epi32(pair16(sm[2 * j], sm[2 * j + 1]));  // the same for every lane
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(s->scale_pairs[j]), scales);
  }
  for (int k = 0; k < 4; ++k) s->extra[k] = pair16(sm[8 + 2 * k], sm[9 + 2 * k]);
  s->d = half(x.d);
  s->dmin = -half(x.dmin);
}

// A Q6_K super-block: its unsigned quants (q6k_quants); lane m of 64-value group j takes values 64j + 4m..
// (16-value block 4j + m/4) and 64j + 32 + 4m.. (block 4j + 2 + m/4).
inline void prepare_block(const BlockQ6_K& x, PreparedBlock* s) {
  for (int c = 0; c < 2; ++c) {
    __m512i q[2];  // values 128c..128c+63, 128c+64..128c+127
    q6k_quants(x, c, &q[0], &q[1]);
    for (int h = 0; h < 2; ++h) {
      interleave_quads(_mm512_castsi512_si256(q[h]), _mm512_extracti64x4_epi64(q[h], 1), s->quads[2 * c + h]);
    }
  }
  for (int j = 0; j < 4; ++j) {  // lanes 0-3: blocks 4j and 4j + 2; lanes 4-7: 4j + 1 and 4j + 3
    const int32_t first = pair16(x.scales[4 * j], x.scales[4 * j + 2]);
    const int32_t second = pair16(x.scales[4 * j + 1], x.scales[4 * j + 3]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(s->scale_pairs[j]),
                        _mm256_blend_epi32(_mm256_set1_epi32(first), _mm256_set1_epi32(second), 0xf0));
  }
  for (int m = 0; m < 8; ++m) s->extra[m] = pair16(x.scales[2 * m], x.scales[2 * m + 1]);
  s->d = half(x.d);
  s->dmin = 0.0f;
}

// Bytes of prepared super-blocks (PreparedBlock) at once: rows of a chunk are prepared once, then every token
// group passes over them while they stay in L2.
constexpr size_t kPreparedBytes = 256 * 1024;

// Prepared rows w0 + i * step (i < R; nb PreparedBlocks each) times the tokens of one packed group (n_valid of
// them), results to out[t * ldo + i * ostep].
template <class V, class Block, int R>
void k_tile(int64_t nb, const uint8_t* w0, size_t step, const PackedQ8K* p, int64_t n_valid, float* out,
            int64_t ostep, int64_t ldo) {
  constexpr bool kQ4 = std::is_same_v<Block, BlockQ4_K>, kQ5 = std::is_same_v<Block, BlockQ5_K>;
  constexpr bool kQ6 = std::is_same_v<Block, BlockQ6_K>;
  const PreparedBlock* x[R];
  typename V::F acc[R][8], acc_min[R][4];  // Q5_K uses acc_min[i][0] only
  _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
    x[i] = reinterpret_cast<const PreparedBlock*>(w0 + i * step);
    _Pragma("GCC unroll 8") for (int m = 0; m < 8; ++m) acc[i][m] = V::zerof();
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) acc_min[i][k] = V::zerof();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ8K& pb = p[b];
    const typename V::F da = V::loadf(pb.d);
    _Pragma("GCC unroll 8") for (int m = 0; m < 8; ++m) {
      // Two integer chains per row (groups j even and odd), so that 2R multiply-adds are in flight.
      typename V::I s[2][R];
      _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
        s[1][i] = V::zero();
        if constexpr (!kQ6) {
          s[0][i] = V::zero();
        } else {  // minus 32 * (bsums 2m, 2m + 1 times scales 2m, 2m + 1)
          const typename V::I offset = V::dpwssd(V::zero(), V::set1(x[i][b].extra[m]), V::load(pb.bsum_pairs[m]));
          s[0][i] = V::sub(V::zero(), V::shl5(offset));
        }
      }
      _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
        const typename V::I a0 = V::load(pb.quads[j][2 * m]), a1 = V::load(pb.quads[j][2 * m + 1]);
        _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
          const PreparedBlock& w = x[i][b];
          // Per token, two int16: the sums over values 64j + 4m..+3 and 64j + 32 + 4m..+3 (at most 4 * 63 *
          // 128 in size, so vpmaddubsw never saturates and the int16 additions are exact).
          const typename V::I sums =
              V::add16(V::maddubs(V::set1(w.quads[j][2 * m]), a0), V::maddubs(V::set1(w.quads[j][2 * m + 1]), a1));
          s[j & 1][i] = V::dpwssd(s[j & 1][i], sums, V::set1(w.scale_pairs[j][m]));
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

// Chunks of rows: each prepared once (kPreparedBytes), then packed groups outside and rows inside
// (vnni::for_packed_groups).
template <class Block>
void dot_k_packed(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                  int64_t n_tokens, float* out, int64_t ldo) {
  const int64_t nb = n / kQK_K;
  const size_t prepared_stride = (size_t)nb * sizeof(PreparedBlock);
  const int64_t chunk = std::max<int64_t>(4, (int64_t)(kPreparedBytes / prepared_stride) / 4 * 4);
  thread_local std::vector<PreparedBlock> prepared;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    if ((int64_t)prepared.size() < nr * nb) prepared.resize((size_t)(nr * nb));
    for (int64_t r = 0; r < nr; ++r) {
      const Block* x = reinterpret_cast<const Block*>(w + (r0 + r) * row_stride);
      for (int64_t b = 0; b < nb; ++b) prepare_block(x[b], &prepared[(size_t)(r * nb + b)]);
    }
    vnni::for_packed_groups<4>(reinterpret_cast<const uint8_t*>(prepared.data()), prepared_stride, nr,
                               reinterpret_cast<const PackedQ8K*>(packed), nb, n_tokens, out + r0, ldo,
                               [&]<class V, int R>(const uint8_t* w0, size_t step, const PackedQ8K* g, int64_t valid,
                                                   float* o, int64_t os) {
                                 k_tile<V, Block, R>(nb, w0, step, g, valid, o, os, ldo);
                               });
  }
}

// Token `lane` of packed block g from activation block y: its values interleaved in quads, its bsums in pairs,
// the 32-value sums in pairs as GGML's _mm_hadd_epi16 forms them (int16 sums; they fit: 32 * 127), its scale.
void pack_lane(PackedQ8K& g, const BlockQ8_K& y, int lane) {
  for (int j = 0; j < 4; ++j) {
    int32_t quads[16];
    interleave_quads(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs + 64 * j)),
                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs + 64 * j + 32)), quads);
    for (int i = 0; i < 16; ++i) g.quads[j][i][lane] = quads[i];
  }
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
