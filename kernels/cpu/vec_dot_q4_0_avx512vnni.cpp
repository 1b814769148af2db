// kernels/cpu/vec_dot_q4_0_avx512vnni.cpp: Q4_0 rows times many tokens with AVX-512 VNNI, in GGML's order.
//
// GGML's Q4_0 dot keeps 8 lanes per row: lane l holds, block after block, acc_l = fma(d_w * d_a, s_l, acc_l),
// where s_l is the integer sum of the products of values 4l..4l+3 ((q - 8) * a; values 0-15 are the low
// nibbles, 16-31 the high ones), and the lanes end in hsum_float_8's tree. Here the lanes of a register are
// tokens instead: for each l, one vpdpbusd multiplies the 4 unsigned nibbles q (broadcast) by the 4 signed
// activation bytes of 16 tokens, starting from -8 * (those activation bytes' sum), packed once per product
// (pack_q4_0_tokens_vnni). So each token's s_l, its multiply-add and the final tree are exactly GGML's, and
// results are bit-identical to dot_rows (vec_dot_test), while 16 tokens share every instruction.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

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

// One block of 16 tokens, packed: q[l][t] holds bytes 4l..4l+3 of token t's Q8_0 block, corr[l][t] is -8 times
// their sum, d[t] the block's scale as a float. Lanes past the last token hold zeros.
struct PackedQ4_0 {
  int8_t q[8][16][4];
  int32_t corr[8][16];
  float d[16];
};
using vnni::kPackedTokens;

// Rows w0 + i * step (i < R) times the tokens of one packed group (n_valid of them), results to
// out[t * ldo + i * ostep].
template <class V, int R>
void q4_0_tile(int64_t nb, const uint8_t* w0, size_t step, const PackedQ4_0* p, int64_t n_valid, float* out,
               int64_t ostep, int64_t ldo) {
  const BlockQ4_0* x[R];
  typename V::F acc[R][8];
  _Pragma("GCC unroll 2") for (int i = 0; i < R; ++i) {
    x[i] = reinterpret_cast<const BlockQ4_0*>(w0 + i * step);
    _Pragma("GCC unroll 8") for (int l = 0; l < 8; ++l) acc[i][l] = V::zerof();
  }
  const __m128i low4 = _mm_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ4_0& pb = p[b];
    const typename V::F da = V::loadf(pb.d);
    _Pragma("GCC unroll 2") for (int i = 0; i < R; ++i) {
      // The 32 nibbles as bytes: values 0-15 (low nibbles), then 16-31 (high nibbles).
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i][b].qs));
      alignas(32) int32_t nibbles[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(nibbles), _mm_and_si128(packed, low4));
      _mm_store_si128(reinterpret_cast<__m128i*>(nibbles + 4), _mm_and_si128(_mm_srli_epi16(packed, 4), low4));
      const typename V::F d = V::mul(V::set1f(half(x[i][b].d)), da);
      _Pragma("GCC unroll 8") for (int l = 0; l < 8; ++l) {
        const typename V::I s = V::dpbusd(V::load(pb.corr[l]), V::set1(nibbles[l]), V::load(pb.q[l]));
        acc[i][l] = V::fmadd(d, V::cvt(s), acc[i][l]);
      }
    }
  }
  _Pragma("GCC unroll 2") for (int i = 0; i < R; ++i) {
    // hsum_float_8's tree, lane by lane: ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)).
    const typename V::F a0 = V::addf(acc[i][4], acc[i][0]), a1 = V::addf(acc[i][5], acc[i][1]);
    const typename V::F a2 = V::addf(acc[i][6], acc[i][2]), a3 = V::addf(acc[i][7], acc[i][3]);
    vnni::store_tokens<V>(V::addf(V::addf(a0, a2), V::addf(a1, a3)), n_valid, out + i * ostep, ldo);
  }
}

// Token `lane` of packed block g: activation block y's bytes, their correction terms and scale.
void pack_lane(PackedQ4_0& g, const BlockQ8_0& y, int lane) {
  for (int l = 0; l < 8; ++l) {
    const int8_t* a = y.qs + 4 * l;
    std::memcpy(g.q[l][lane], a, 4);
    g.corr[l][lane] = -8 * (a[0] + a[1] + a[2] + a[3]);
  }
  g.d[lane] = half(y.d);
}

}  // namespace

void pack_q4_0_tokens_vnni(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens,
                           std::vector<uint8_t>* packed) {
  vnni::pack_token_groups<PackedQ4_0, BlockQ8_0>(n / kQK8_0, acts, act_stride, n_tokens, packed, pack_lane);
}

void dot_q4_0_packed_vnni(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed,
                          int64_t n_tokens, float* out, int64_t ldo) {
  const int64_t nb = n / kQK8_0;
  vnni::for_packed_groups<2>(w, row_stride, rows, reinterpret_cast<const PackedQ4_0*>(packed), nb, n_tokens, out, ldo,
                             [&]<class V, int R>(const uint8_t* w0, size_t step, const PackedQ4_0* g, int64_t valid,
                                                 float* o, int64_t os) {
                               q4_0_tile<V, R>(nb, w0, step, g, valid, o, os, ldo);
                             });
}

}  // namespace pginfer
