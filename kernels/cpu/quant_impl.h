// kernels/cpu/quant_impl.h: pieces shared by the quantization and dot-product files of kernels/cpu.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K or Q5_K super-block, unpacked from `scales`
// (GGML's get_scale_min_k4 layout: sub-blocks 0-3 in the low 6 bits of bytes 0-7, 4-7 split between the
// nibbles of bytes 8-11 and the top 2 bits of bytes 0-7).
inline void k_scale_min(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Round to nearest, ties to even, as GGML's nearest_int: adding 1.5 * 2^23 leaves the rounded integer in
// the low mantissa bits (exact for |x| < 2^22; beyond, where GGML's result is undefined, nearbyint).
inline int nearest_int(float x) {
  if (!(std::fabs(x) <= 4194303.0f)) return (int)std::nearbyint(std::fmax(-2147483520.0f, std::fmin(x, 2147483520.0f)));
  const float v = x + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// quantize_q8_0 (quant.cpp) with AVX2 + F16C: the same bytes for every finite input (quant_avx2.cpp).
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb);
void quantize_q8_0_avx2(const float* x, BlockQ8_0* y, int64_t nb);

// AVX2 dequantization of F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K rows (dequant_avx2.cpp).
void dequantize_row_avx2(TensorType type, const void* src, float* dst, int64_t n);

// The first fit of make_qkx2_quants, shared by its scalar and AVX2 versions: the range [min(x, 0),
// max(x)], weighted sums, the levels of the range-based scale (written to L) and their weighted error.
struct Qkx2Start {
  float min, max, sum_w, sum_x, scale, best_error;
};

// Fills *s and returns true; when all values are equal, zeroes L, sets *the_min and returns false. `static`
// so that each kernel file compiles its own copy for its own instruction set.
static inline bool qkx2_start(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                              Qkx2Start* s) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::memset(L, 0, n);
    *the_min = -min;
    return false;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)std::max(0, std::min(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  *s = {min, max, sum_w, sum_x, scale, best_error};
  return true;
}

// The first fit of make_qx_quants, shared by its scalar and AVX2 versions: the value of largest
// magnitude maps to level -nmax; levels (offset by nmax) go to L; the fitted scale and its merit.
struct QxStart {
  float max, scale, best;
};

// Fills *s and returns true; when every value is (nearly) zero, zeroes L and returns false. `static` for
// the same reason as qkx2_start.
static inline bool qx_start(int n, int nmax, const float* x, int8_t* L, QxStart* s) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < 1e-15f) {
    std::memset(L, 0, n);
    return false;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = (int8_t)(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  *s = {max, scale, best};
  return true;
}

// Levels 0..nmax for n <= 32 values with x ~ scale * L - min, minimizing the squared error weighted by
// `weights`: starting from the value range, nstep + 1 candidate scales (nmax + rmin + rdelta * i levels over
// the range) are tried, each refitted by least squares, the best kept; returns the scale and sets *the_min
// (>= 0). GGML's make_qkx2_quants. The AVX2 version (quant_k_avx2.cpp) evaluates 8 candidates at a time
// with the same float operations per candidate, so its results are bit-identical.
float make_qkx2_quants_scalar(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                              float rmin, float rdelta, int nstep);
float make_qkx2_quants_avx2(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                            float rmin, float rdelta, int nstep);

// Signed levels -nmax..nmax-1 (stored + nmax in L) for n <= 32 values with x ~ scale * l, weights x^2: the
// value of largest magnitude maps to -nmax, 18 nearby scales are tried, and the least-squares scale of the
// best set of levels is returned. GGML's make_qx_quants (rmse_type 1); the AVX2 version is bit-identical.
float make_qx_quants_scalar(int n, int nmax, const float* x, int8_t* L);
float make_qx_quants_avx2(int n, int nmax, const float* x, int8_t* L);

// Quantizers of quant_k.cpp, nb super-blocks each.
void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb);
void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb);
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb);
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb);
// quantize_q8_k with AVX2: the same bytes for every input (blocks with infinities or NaNs, or so small that
// the inverse scale overflows, take the scalar code; quant_avx2.cpp).
void quantize_q8_k_avx2(const float* x, BlockQ8_K* y, int64_t nb);

}  // namespace pginfer
