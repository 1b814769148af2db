// kernels/cpu/quant_k_avx2.cpp: the K-quant scale searches with 8 candidate scales per AVX2 register.
//
// make_qkx2_quants and make_qx_quants try a list of candidate scales one after the other, each a sweep over
// the sub-block's values with running float sums. Here lane k of every register holds candidate k: each
// lane performs exactly the scalar code's operations for its candidate, in the same order (the sweep over
// the values stays sequential; no fused multiply-adds), so the sums, and therefore the chosen levels and
// scales, are bit-identical to the scalar versions in quant_k.cpp. Candidates are then accepted in order
// by the scalar rule. In make_qkx2_quants an accepted candidate moves the min that later candidates are
// measured from, so the candidates after it are evaluated again with the new min.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant_impl.h"

namespace pginfer {

namespace {

inline __m256 round_even(__m256 v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

inline void store(float* out, __m256 v) { _mm256_storeu_ps(out, v); }

}  // namespace

float make_qkx2_quants_avx2(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                            float rmin, float rdelta, int nstep) {
  // Prologue as the scalar code: range, weighted sums, the levels of the range-based scale and their error.
  Qkx2Start start;
  if (!qkx2_start(n, nmax, x, weights, L, the_min, &start)) return 0.0f;
  float min = start.min;
  const float max = start.max, sum_w = start.sum_w, sum_x = start.sum_x;
  float scale = start.scale, best_error = start.best_error;
  const __m256 vmax_level = _mm256_set1_ps((float)nmax), zero = _mm256_setzero_ps();
  const __m256 vsum_w = _mm256_set1_ps(sum_w), vsum_x = _mm256_set1_ps(sum_x);
  __m256 laux[32];  // laux[i], lane k: level of value i under candidate k
  int next = 0;
  while (next <= nstep) {
    const int count = std::min(8, nstep + 1 - next);
    // iscale = (rmin + rdelta * is + nmax) / (max - min), is = next + lane.
    const __m256 is =
        _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(next), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    const __m256 vis = _mm256_div_ps(
        _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(rmin), _mm256_mul_ps(_mm256_set1_ps(rdelta), is)), vmax_level),
        _mm256_set1_ps(max - min));
    const __m256 vmin = _mm256_set1_ps(min);
    __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      const __m256 xi = _mm256_set1_ps(x[i]), wi = _mm256_set1_ps(weights[i]);
      const __m256 l =
          _mm256_min_ps(_mm256_max_ps(round_even(_mm256_mul_ps(vis, _mm256_sub_ps(xi, vmin))), zero), vmax_level);
      laux[i] = l;
      const __m256 wl = _mm256_mul_ps(wi, l);
      sum_l = _mm256_add_ps(sum_l, wl);
      sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
      sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xi));
    }
    const __m256 D = _mm256_sub_ps(_mm256_mul_ps(vsum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
    __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(vsum_w, sum_xl), _mm256_mul_ps(vsum_x, sum_l)), D);
    __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, vsum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
    const __m256 positive = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
    this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
    this_min = _mm256_blendv_ps(this_min, zero, positive);
    __m256 err = zero;
    for (int i = 0; i < n; ++i) {
      const __m256 xi = _mm256_set1_ps(x[i]);
      __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, laux[i]), this_min), xi);
      diff = _mm256_mul_ps(diff, diff);
      err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_set1_ps(weights[i]), diff));
    }
    float d[8], e[8], s[8], m[8];
    store(d, D), store(e, err), store(s, this_scale), store(m, this_min);
    int accepted = -1;
    for (int k = 0; k < count; ++k) {
      if (d[k] > 0 && e[k] < best_error) {
        accepted = k;
        break;
      }
    }
    if (accepted < 0) {
      next += count;
      continue;
    }
    float lanes[8];
    for (int i = 0; i < n; ++i) {
      store(lanes, laux[i]);
      L[i] = (uint8_t)lanes[accepted];
    }
    best_error = e[accepted];
    scale = s[accepted];
    min = m[accepted];
    next += accepted + 1;  // later candidates are measured from the new min
  }
  *the_min = -min;
  return scale;
}

float make_qx_quants_avx2(int n, int nmax, const float* x, int8_t* L) {
  QxStart start;
  if (!qx_start(n, nmax, x, L, &start)) return 0.0f;
  const float max = start.max;
  float scale = start.scale, best = start.best;
  // The 18 others (is = -9..9 without 0), 8 per register; their sums do not depend on each other.
  static const int kSteps[18] = {-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const __m256 lo = _mm256_set1_ps((float)-nmax), hi = _mm256_set1_ps((float)(nmax - 1));
  const __m256 vmax = _mm256_set1_ps(max);
  for (int first = 0; first < 18; first += 8) {
    const int count = std::min(8, 18 - first);
    int steps[8];
    for (int k = 0; k < 8; ++k) steps[k] = kSteps[std::min(first + k, 17)];
    // iscale = -(nmax + 0.1f * is) / max
    const __m256 is = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(steps)));
    const __m256 vis =
        _mm256_div_ps(_mm256_xor_ps(_mm256_add_ps(_mm256_set1_ps((float)nmax), _mm256_mul_ps(_mm256_set1_ps(0.1f), is)),
                                    _mm256_set1_ps(-0.0f)),
                      vmax);
    __m256 vlx = _mm256_setzero_ps(), vl2 = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256 xi = _mm256_set1_ps(x[i]);
      const __m256 l = _mm256_min_ps(_mm256_max_ps(round_even(_mm256_mul_ps(vis, xi)), lo), hi);
      const __m256 w = _mm256_set1_ps(x[i] * x[i]);
      vlx = _mm256_add_ps(vlx, _mm256_mul_ps(_mm256_mul_ps(w, xi), l));
      vl2 = _mm256_add_ps(vl2, _mm256_mul_ps(_mm256_mul_ps(w, l), l));
    }
    float slx[8], sl2[8], isc[8];
    store(slx, vlx), store(sl2, vl2), store(isc, vis);
    for (int k = 0; k < count; ++k) {
      if (sl2[k] > 0 && slx[k] * slx[k] > best * sl2[k]) {
        for (int i = 0; i < n; ++i) {
          const int l = nearest_int(isc[k] * x[i]);
          L[i] = (int8_t)(nmax + std::max(-nmax, std::min(nmax - 1, l)));
        }
        scale = slx[k] / sl2[k];
        best = scale * slx[k];
      }
    }
  }
  return scale;
}

}  // namespace pginfer
