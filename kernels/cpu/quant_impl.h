// kernels/cpu/quant_impl.h: pieces shared by the quantization and dot-product files of kernels/cpu.
#pragma once

#include <cmath>
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

// AVX2 dequantization of F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K rows (dequant_avx2.cpp).
void dequantize_row_avx2(TensorType type, const void* src, float* dst, int64_t n);

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

}  // namespace pginfer
