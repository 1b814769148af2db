// kernels/cpu/quant_k.cpp: quantizers of the K-quant weight types (Q4_K, Q5_K, Q6_K) and of Q8_K activations.
//
// The weight quantizers follow GGML's reference quantizers (quantize_row_q*_K_ref, what llama-quantize
// runs without an importance matrix) step by step: per sub-block a weighted least-squares search over
// candidate scales (make_qkx2_quants: scale and min for Q4_K/Q5_K; make_qx_quants: a signed scale for
// Q6_K), the sub-block scales quantized to 6 or 8 bits against the super-block's, and every value
// requantized with the scale it will be decoded with. Float operations are those of the reference in its
// order (no fused multiply-adds), so the blocks usually come out bit-identical to llama-quantize's; that is
// not a requirement, only quality is. Q8_K (activations) is bit-identical to GGML's quantize_row_q8_K.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant_impl.h"

namespace pginfer {

namespace {

// Below this, a group of values counts as all zero (GGML's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

}  // namespace

// (Declared in quant_impl.h.) GGML's make_qkx2_quants without its mean-absolute-error variant, including
// its habit of measuring later candidates from the best min found so far.
float make_qkx2_quants_scalar(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                              float rmin, float rdelta, int nstep) {
  uint8_t Laux[32];
  Qkx2Start start;
  if (!qkx2_start(n, nmax, x, weights, L, the_min, &start)) return 0.0f;
  float min = start.min;
  const float max = start.max, sum_w = start.sum_w, sum_x = start.sum_x;
  float scale = start.scale, best_error = start.best_error;
  for (int is = 0; is <= nstep; ++is) {
    const float iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = (uint8_t)l;
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        std::memcpy(L, Laux, n);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// (Declared in quant_impl.h.) GGML's make_qx_quants with rmse_type 1 and no importance weights.
float make_qx_quants_scalar(int n, int nmax, const float* x, int8_t* L) {
  QxStart start;
  if (!qx_start(n, nmax, x, L, &start)) return 0.0f;
  const float max = start.max;
  float scale = start.scale, best = start.best;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(nmax + 0.1f * is) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

namespace {

// The candidate searches: 8 candidates at a time with AVX2 (same results), else the scalar code.
using Qkx2Fn = float (*)(int, int, const float*, const float*, uint8_t*, float*, float, float, int);
using QxFn = float (*)(int, int, const float*, int8_t*);
Qkx2Fn qkx2_fn() {
  static const Qkx2Fn fn = simd_level() >= SimdLevel::Avx2 ? make_qkx2_quants_avx2 : make_qkx2_quants_scalar;
  return fn;
}
QxFn qx_fn() {
  static const QxFn fn = simd_level() >= SimdLevel::Avx2 ? make_qx_quants_avx2 : make_qx_quants_scalar;
  return fn;
}

// Packs the 6-bit scales and mins of 8 sub-blocks into 12 bytes (the inverse of k_scale_min).
void pack_scales_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = ls[j];
      scales[j + 4] = lm[j];
    } else {
      scales[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
      scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): one super-block of 8 x 32 values; fills d, dmin, the packed
// scales and the levels L. rmin/rdelta/nstep are GGML's search settings for the type.
void quantize_k_superblock(const float* x, int nmax, float rmin, float rdelta, int nstep, fp16_t* d_out,
                           fp16_t* dmin_out, uint8_t* packed, uint8_t* L) {
  float scales[8], mins[8], weights[32];
  const Qkx2Fn search = qkx2_fn();
  float max_scale = 0, max_min = 0;  // as the min is subtracted, scales are positive
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = search(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, rdelta, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = std::min<uint8_t>(63, (uint8_t)nearest_int(inv_scale * scales[j]));
    lm[j] = std::min<uint8_t>(63, (uint8_t)nearest_int(inv_min * mins[j]));
  }
  pack_scales_k4(ls, lm, packed);
  *d_out = fp32_to_fp16(max_scale / 63.0f);
  *dmin_out = fp32_to_fp16(max_min / 63.0f);
  // Requantize with the scales as decoded; a sub-block whose scale rounds to 0 keeps its search levels.
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k_scale_min(j, packed, &sc, &m);
    const float d = fp16_to_fp32(*d_out) * sc;
    if (d == 0) continue;
    const float dm = fp16_to_fp32(*dmin_out) * m;
    for (int i = 0; i < 32; ++i) {
      const int l = nearest_int((x[32 * j + i] + dm) / d);
      L[32 * j + i] = (uint8_t)std::max(0, std::min(nmax, l));
    }
  }
}

}  // namespace

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_superblock(x, 15, -1.0f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQK_K; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_superblock(x, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    uint8_t* ql = y[i].qs;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) l1 -= 16, y[i].qh[j] |= m1;
        if (l2 > 15) l2 -= 16, y[i].qh[j] |= m2;
        ql[j] = (uint8_t)(l1 | (l2 << 4));
      }
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[kQK_K];
  const QxFn search = qx_fn();
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = search(16, 32, x + 16 * ib, L + 16 * ib);
      const float abs_scale = std::fabs(scales[ib]);
      if (abs_scale > max_abs_scale) max_abs_scale = abs_scale, max_scale = scales[ib];
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.0f / max_scale;
    y[i].d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y[i].scales[ib] = (int8_t)std::min(127, nearest_int(iscale * scales[ib]));
    // Requantize with the scales as decoded; a sub-block whose scale rounds to 0 keeps its search levels.
    for (int j = 0; j < 16; ++j) {
      const float d = fp16_to_fp32(y[i].d) * y[i].scales[j];
      if (d == 0) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = (int8_t)(std::max(-32, std::min(31, l)) + 32);
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0x0f, q2 = L[j + l + 32] & 0x0f;
        const uint8_t q3 = L[j + l + 64] & 0x0f, q4 = L[j + l + 96] & 0x0f;
        ql[l] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                          ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

// Bit-identical to GGML's quantize_row_q8_K_ref (what its x86 builds use too): the value of largest
// magnitude (the first one, on ties) maps to -127, iscale = -127 / max, q = nearest_int(iscale * x) (ties
// to even) capped at 127, d = 1 / iscale, and the sums of each 16 quants for the K-quant dot products. An
// all-zero block gets d = 0 and zero quants (and, unlike GGML, which leaves them, zero sums).
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) amax = ax, max = x[j];
    }
    if (amax == 0) {
      y[i].d = 0;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) y[i].qs[j] = (int8_t)std::min(127, nearest_int(iscale * x[j]));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = (int16_t)sum;
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace pginfer
