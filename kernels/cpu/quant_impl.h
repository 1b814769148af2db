// kernels/cpu/quant_impl.h: pieces shared by the quantization and dot-product files of kernels/cpu.
#pragma once

#include <cmath>
#include <cstdint>

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

// Round to nearest, ties to even, as GGML's nearest_int (valid for |x| < 2^22).
inline int nearest_int(float x) { return (int)std::nearbyint(x); }

// AVX2 dequantization of F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K rows (dequant_avx2.cpp).
void dequantize_row_avx2(TensorType type, const void* src, float* dst, int64_t n);

// Quantizers of quant_k.cpp, nb super-blocks each.
void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb);
void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb);
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb);
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb);

}  // namespace pginfer
