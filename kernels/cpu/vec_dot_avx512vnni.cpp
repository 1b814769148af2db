// kernels/cpu/vec_dot_avx512vnni.cpp: Q8_0 row dots with AVX-512 VNNI, in the block-exact order of
// vec_dot_q8_0.h: one token (eight rows in the lanes) and many tokens (sixteen tokens in the lanes).
//
// vpdpbusd multiplies unsigned bytes by signed bytes, so one side is biased to unsigned (x ^ 0x80 is
// x + 128) and a correction of -128 times the other side's sum starts the accumulation: the integer sums
// stay exact.
//  - One token: weights are biased, and each block's lanes start from -128 times the activation's bytes.
//  - Many tokens: the activations are packed once per product (pack_q8_0_tokens_vnni), biased and
//    interleaved so that one 512-bit register holds the same 4 bytes of 16 tokens; each 4 weight bytes are
//    broadcast to all lanes, and a block's 8 such products give 16 tokens' block sums in one register. Then
//    one multiply-add per block advances 16 tokens of a row: about a third of the operations of 8 lanes of
//    partial sums per token. Rows are taken four at a time from four bands of the matrix.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/vec_dot_impl.h"
#include "kernels/cpu/vec_dot_q8_0.h"
#include "kernels/cpu/vnni_lanes.h"

// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512 intrinsics
// (_mm512_undefined_*) as maybe-uninitialized; nothing of ours is.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace pginfer {

namespace {

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// The block dot of vec_dot_q8_0.h with weights biased to unsigned.
struct Q8_0BlockDotVnni {
  // Lanes summing to -128 * (the sum of the activation block): removes the weights' bias.
  static __m256i start(const int8_t* a) {
    const __m256i biased = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), load256(a));
    return _mm256_sub_epi32(_mm256_setzero_si256(), biased);
  }
  static __m256i dot(__m256i start, const int8_t* w, const int8_t* a) {
    return _mm256_dpbusd_epi32(start, _mm256_xor_si256(load256(w), _mm256_set1_epi8((char)0x80)), load256(a));
  }
};

// One block of 16 tokens, packed: q[l][t] holds bytes 4l..4l+3 of token t's block plus 128 (unsigned), d[t]
// its scale as a float. Lanes past the last token hold zeros (each lane is a token of its own: what they
// compute is never stored).
struct PackedQ8_0 {
  uint8_t q[8][16][4];
  float d[16];
};
using vnni::kPackedTokens;

// -128 * (the sum of a weight block's 32 values) in all 8 lanes: the start that removes the activations'
// bias.
inline __m256i weight_correction(const int8_t* w) {
  const __m256i biased = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), load256(w));
  return _mm256_sub_epi32(_mm256_setzero_si256(), q8_0_hsum_all_epi32(biased));
}

// Rows w0 + i * step (i < R) times the tokens of one packed group (n_valid of them), results to
// out[t * ldo + i * ostep].
template <class V, int R>
void packed_tile(int64_t nb, const uint8_t* w0, size_t step, const PackedQ8_0* p, int64_t n_valid, float* out,
                 int64_t ostep, int64_t ldo) {
  const BlockQ8_0* x[R];
  typename V::F acc[R];
  _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
    x[i] = reinterpret_cast<const BlockQ8_0*>(w0 + i * step);
    acc[i] = V::zerof();
  }
  for (int64_t b = 0; b < nb; ++b) {
    typename V::I q[8];
    _Pragma("GCC unroll 8") for (int l = 0; l < 8; ++l) q[l] = V::load(p[b].q[l]);
    const typename V::F da = V::loadf(p[b].d);
    _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) {
      const int8_t* wq = x[i][b].qs;
      // Two chains of products, so that the next product need not wait for the last.
      typename V::I s0 = V::widen(weight_correction(wq)), s1 = V::zero();
      _Pragma("GCC unroll 4") for (int l = 0; l < 8; l += 2) {
        int32_t w4a, w4b;
        std::memcpy(&w4a, wq + 4 * l, 4);
        std::memcpy(&w4b, wq + 4 * l + 4, 4);
        s0 = V::dpbusd(s0, q[l], V::set1(w4a));
        s1 = V::dpbusd(s1, q[l + 1], V::set1(w4b));
      }
      acc[i] = V::fmadd(V::mul(V::set1f(half(x[i][b].d)), da), V::cvt(V::add(s0, s1)), acc[i]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < R; ++i) vnni::store_tokens<V>(acc[i], n_valid, out + i * ostep, ldo);
}

// Token `lane` of packed block g: activation block y's bytes biased to unsigned, and its scale.
void pack_lane(PackedQ8_0& g, const BlockQ8_0& y, int lane) {
  alignas(32) uint8_t biased[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(biased), _mm256_xor_si256(load256(y.qs), _mm256_set1_epi8((char)0x80)));
  for (int l = 0; l < 8; ++l) std::memcpy(g.q[l][lane], biased + 4 * l, 4);
  g.d[lane] = half(y.d);
}

}  // namespace

void dot_q8_0_rows_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const void* act, float* out) {
  q8_0_rows<Q8_0BlockDotVnni>(n, w, row_stride, rows, static_cast<const BlockQ8_0*>(act), out);
}

void pack_q8_0_tokens_vnni(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                           std::vector<uint8_t>* packed) {
  vnni::pack_token_groups<PackedQ8_0, BlockQ8_0>(n / kQK8_0, acts, act_stride, n_tokens, packed, pack_lane);
}

void dot_q8_0_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo) {
  const int64_t nb = n / kQK8_0;
  vnni::for_packed_groups<4>(w, row_stride, rows, reinterpret_cast<const PackedQ8_0*>(packed), nb, n_tokens, out, ldo,
                             [&]<class V, int R>(const uint8_t* w0, size_t step, const PackedQ8_0* g, int64_t valid,
                                                 float* o, int64_t os) {
                               packed_tile<V, R>(nb, w0, step, g, valid, o, os, ldo);
                             });
}

}  // namespace pginfer
