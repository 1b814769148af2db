// kernels/cpu/quant_k.cpp: quantizers of the K-quant weight types and of Q8_K activations.
//
// Weight quantizers (Q4_K, Q5_K, Q6_K) choose per-sub-block scales (and mins) from the value range, then
// quantize the scales themselves to 6 or 8 bits and requantize every value with the scale it will
// actually be decoded with. llama-quantize additionally searches around each scale for the smallest
// weighted error; we do a short search too (a few candidate scales per sub-block), so quality is close but
// the bits are not identical to its output. Q8_K (activations) is bit-identical to GGML's.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant_impl.h"

namespace pginfer {

namespace {

// Chooses scale and min for n values with levels 0..nmax (x ~ scale * L - min, min >= 0), trying a few
// scales around the range-based one and keeping the one with the smallest squared error.
void choose_scale_min(const float* x, int n, int nmax, float* scale, float* min_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (lo > 0) lo = 0;
  if (hi == lo) {
    *scale = 0.0f;
    *min_out = -lo;
    return;
  }
  float best_err = INFINITY, best_scale = 0, best_min = -lo;
  for (int step = -4; step <= 4; ++step) {
    const float iscale = (nmax + 0.1f * step) / (hi - lo);
    if (iscale <= 0) continue;
    // Least-squares scale and min for the levels this iscale gives.
    double sl = 0, sl2 = 0, sx = 0, sxl = 0;
    int levels[32];
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      levels[i] = l;
      sl += l, sl2 += (double)l * l, sx += x[i], sxl += (double)x[i] * l;
    }
    const double det = n * sl2 - sl * sl;
    float s = 1.0f / iscale, m = -lo;
    if (det > 0) {
      s = (float)((n * sxl - sx * sl) / det);
      m = (float)(-(sx * sl2 - sl * sxl) / det);
    }
    if (m < 0) {  // min must stay non-negative: refit the scale with min = 0
      m = 0;
      s = sl2 > 0 ? (float)(sxl / sl2) : 0.0f;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float d = s * levels[i] - m - x[i];
      err += d * d;
    }
    if (err < best_err) best_err = err, best_scale = s, best_min = m;
  }
  *scale = std::max(best_scale, 0.0f);
  *min_out = best_min;
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

// Shared by Q4_K and Q5_K: 8 sub-blocks of 32 with levels 0..nmax; fills d, dmin, scales and levels L.
void quantize_k_scales(const float* x, int nmax, fp16_t* d_out, fp16_t* dmin_out, uint8_t* scales, uint8_t* L) {
  float sc[8], mn[8];
  float max_sc = 0, max_mn = 0;
  for (int j = 0; j < 8; ++j) {
    choose_scale_min(x + 32 * j, 32, nmax, &sc[j], &mn[j]);
    max_sc = std::max(max_sc, sc[j]);
    max_mn = std::max(max_mn, mn[j]);
  }
  const float inv_sc = max_sc > 0 ? 63.0f / max_sc : 0.0f;
  const float inv_mn = max_mn > 0 ? 63.0f / max_mn : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = (uint8_t)std::min(63, nearest_int(inv_sc * sc[j]));
    lm[j] = (uint8_t)std::min(63, nearest_int(inv_mn * mn[j]));
  }
  pack_scales_k4(ls, lm, scales);
  *d_out = fp32_to_fp16(max_sc / 63.0f);
  *dmin_out = fp32_to_fp16(max_mn / 63.0f);
  const float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float dq = d * ls[j], dm = dmin * lm[j];
    for (int i = 0; i < 32; ++i) {
      L[32 * j + i] = (uint8_t)(dq > 0 ? std::clamp(nearest_int((x[32 * j + i] + dm) / dq), 0, nmax) : 0);
    }
  }
}

}  // namespace

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_scales(x, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQK_K; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_scales(x, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
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
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    // Per sub-block of 16: the value of largest magnitude maps to level -32 (as GGML's make_qx_quants
    // starts from), then a few nearby scales are tried for the smallest squared error.
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      const float* v = x + 16 * ib;
      float amax = 0, vmax = 0;
      for (int j = 0; j < 16; ++j) {
        if (std::fabs(v[j]) > amax) amax = std::fabs(v[j]), vmax = v[j];
      }
      float best = amax > 0 ? vmax / -32.0f : 0.0f, best_err = INFINITY;
      for (int step = -3; step <= 3 && amax > 0; ++step) {
        const float s = vmax / (-32.0f + 0.5f * step);
        float err = 0;
        for (int j = 0; j < 16; ++j) {
          const float q = (float)std::clamp(nearest_int(v[j] / s), -32, 31);
          err += (q * s - v[j]) * (q * s - v[j]);
        }
        if (err < best_err) best_err = err, best = s;
      }
      scales[ib] = best;
      if (std::fabs(best) > max_abs_scale) max_abs_scale = std::fabs(best), max_scale = best;
    }
    if (max_abs_scale == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.0f / max_scale;
    y[i].d = fp32_to_fp16(1.0f / iscale);
    const float d = fp16_to_fp32(y[i].d);
    uint8_t L[kQK_K];
    for (int ib = 0; ib < 16; ++ib) {
      y[i].scales[ib] = (int8_t)std::min(127, nearest_int(iscale * scales[ib]));
      const float dq = d * y[i].scales[ib];
      for (int j = 0; j < 16; ++j) {
        const int q = dq != 0 ? std::clamp(nearest_int(x[16 * ib + j] / dq), -32, 31) : 0;
        L[16 * ib + j] = (uint8_t)(q + 32);
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

// Bit-identical to GGML's quantize_row_q8_K_ref (also what its x86 build uses): the value of largest
// magnitude maps to -127, rounding half to even, sums of each 16 quants kept for the K-quant dots.
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
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace pginfer
