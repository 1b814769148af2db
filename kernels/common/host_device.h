// kernels/common/host_device.h: what lets one header be compiled for the CPU and for a CUDA device.
//
// PGI_HOST_DEVICE marks a function callable from both sides (__host__ __device__ under nvcc, nothing
// under a plain C++ compiler). Bit casts and the 16-bit float conversions sit here because the host
// versions use memcpy, which device code must not call.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define PGI_HOST_DEVICE __host__ __device__
#define PGI_FORCEINLINE __forceinline__
#else
#define PGI_HOST_DEVICE
#define PGI_FORCEINLINE inline
#endif

namespace pginfer {

// The float whose bits are `u`.
PGI_HOST_DEVICE PGI_FORCEINLINE float hd_bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// IEEE half bits -> float, exact; bit-identical to kernels/cpu/fp16.h's fp16_to_fp32, including NaNs made
// quiet. (The device's conversion instruction, __half2float, gives the same value for every half but NaNs
// and is cheaper; switching to it is left until it can be measured on a GPU.)
PGI_HOST_DEVICE PGI_FORCEINLINE float hd_fp16_to_fp32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      uint32_t m = mant;
      do {
        m <<= 1;
        ++e;
      } while ((m & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return hd_bits_to_float(bits);
}

// bfloat16 bits -> float (exact).
PGI_HOST_DEVICE PGI_FORCEINLINE float hd_bf16_to_fp32(uint16_t h) { return hd_bits_to_float((uint32_t)h << 16); }

}  // namespace pginfer
