// kernels/common/round_activations.h: activations rounded as the CPU's products see them, for the CPU and the
// GPU alike.
//
// The CPU backend multiplies quantized weights with activations quantized to the weight type's dot partner
// (Q8_0 for Q8_0/Q4_0, Q8_K for the K-quants) and float weights with activations rounded to F16 or BF16
// (kernels/cpu/vec_dot.h, gemm.h). The GPU's float kernels reproduce those numbers by rounding activations
// to exactly the values the CPU's quantized copy stands for (quantize, then dequantize), so that the two
// backends differ only in summation order. Bit-identical to kernels/cpu/quant.cpp's quantize_row followed by
// dequantize_row (tests/unit/common_kernels_test.cpp).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/cpu/tensor_type.h"
#include "kernels/cpu/fp16.h"
#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace pginfer {

// The type activations are rounded to before a product with weights of `weight_type` (vec_dot_type's
// mapping): Q8_0, Q8_K, or the float type itself (F32: no rounding).
PGI_HOST_DEVICE PGI_FORCEINLINE TensorType activation_type(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::Q4_0:
    case TensorType::Q8_0: return TensorType::Q8_0;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K: return TensorType::Q8_K;
    default: return weight_type;
  }
}

// Values per rounding block of an activation type (1 for F16/BF16/F32).
PGI_HOST_DEVICE PGI_FORCEINLINE int activation_block(TensorType act_type) {
  return act_type == TensorType::Q8_0 ? 32 : act_type == TensorType::Q8_K ? 256 : 1;
}

// Round to nearest, ties to even (GGML's nearest_int; |x| < 2^22 here).
PGI_HOST_DEVICE PGI_FORCEINLINE int hd_nearest_int(float x) {
#if defined(__CUDA_ARCH__)
  return __float2int_rn(x);
#else
  const float v = x + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
#endif
}

// float -> IEEE half bits, round to nearest even (kernels/cpu/fp16.h's fp32_to_fp16 on the host).
PGI_HOST_DEVICE PGI_FORCEINLINE uint16_t hd_fp32_to_fp16(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  return fp32_to_fp16(f);
#endif
}

// float -> bfloat16 bits, round to nearest even (fp16.h's fp32_to_bf16 on the host).
PGI_HOST_DEVICE PGI_FORCEINLINE uint16_t hd_fp32_to_bf16(float f) {
#if defined(__CUDA_ARCH__)
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64);
  return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
#else
  return fp32_to_bf16(f);
#endif
}

// How a Q8_0 block whose largest magnitude is amax rounds its values (llama.cpp's x86 activation quantizer:
// d = amax / 127 stored as F16, q = nearest_int(x * 127 / amax)): q8_0_value(x) = q * d.
struct Q8_0Rounding {
  float id;  // 127 / amax (0 for an all-zero block)
  float dh;  // amax / 127 as stored (F16)
};
PGI_HOST_DEVICE PGI_FORCEINLINE Q8_0Rounding q8_0_rounding(float amax) {
  const float d = amax / 127.0f;
  return {amax != 0.0f ? 127.0f / amax : 0.0f, hd_fp16_to_fp32(hd_fp32_to_fp16(d))};
}
PGI_HOST_DEVICE PGI_FORCEINLINE float q8_0_value(float x, Q8_0Rounding r) {
  return (float)(int8_t)hd_nearest_int(x * r.id) * r.dh;
}

// 32 values as their Q8_0 quantization decodes.
PGI_HOST_DEVICE inline void round_block_q8_0(const float* x, float* y) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
  const Q8_0Rounding r = q8_0_rounding(amax);
  for (int j = 0; j < 32; ++j) y[j] = q8_0_value(x[j], r);
}

// How a Q8_K block rounds its values when `max` is its first value of largest magnitude (not zero): that value
// maps to -127, q = nearest_int(x * -127 / max) capped at 127, q8_k_value(x) = q * d.
struct Q8_KRounding {
  float iscale;  // -127 / max
  float d;       // 1 / iscale
};
PGI_HOST_DEVICE PGI_FORCEINLINE Q8_KRounding q8_k_rounding(float max) {
  const float iscale = -127.0f / max;
  return {iscale, 1 / iscale};
}
PGI_HOST_DEVICE PGI_FORCEINLINE float q8_k_value(float x, Q8_KRounding r) {
  const int q = hd_nearest_int(r.iscale * x);
  return r.d * (float)(int8_t)(q < 127 ? q : 127);
}

// 256 values as their Q8_K quantization decodes (all zeros when every value is zero).
PGI_HOST_DEVICE inline void round_block_q8_k(const float* x, float* y) {
  float max = 0.0f, amax = 0.0f;
  for (int j = 0; j < 256; ++j) {
    const float ax = fabsf(x[j]);
    if (ax > amax) amax = ax, max = x[j];
  }
  if (amax == 0.0f) {
    for (int j = 0; j < 256; ++j) y[j] = 0.0f;
    return;
  }
  const Q8_KRounding r = q8_k_rounding(max);
  for (int j = 0; j < 256; ++j) y[j] = q8_k_value(x[j], r);
}

// One value rounded to F16 or BF16 (others unchanged).
PGI_HOST_DEVICE PGI_FORCEINLINE float round_value(TensorType act_type, float x) {
  if (act_type == TensorType::F16) return hd_fp16_to_fp32(hd_fp32_to_fp16(x));
  if (act_type == TensorType::BF16) return hd_bf16_to_fp32(hd_fp32_to_bf16(x));
  return x;
}

}  // namespace pginfer
