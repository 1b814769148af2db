// kernels/cpu/fp16.h: scalar conversions between float and the 16-bit float formats of GGUF files.
//
// Rounding is round-to-nearest-even in both directions, as GGML does, so that values we store and values
// llama.cpp stores for the same input are bit-identical.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/common/host_device.h"

namespace pginfer {

// IEEE half bits -> float (exact; signalling NaNs come back quiet, as with F16C). Written once for host
// and device in kernels/common/host_device.h.
inline float fp16_to_fp32(uint16_t h) { return hd_fp16_to_fp32(h); }

// float -> IEEE half bits, round to nearest even; overflow gives infinity, NaN stays NaN. Bit-identical to
// F16C's _cvtss_sh(f, 0) for every float (tests/unit/quant_test.cpp).
inline uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  // Infinity, or NaN kept quiet with the top of its payload (as F16C's vcvtps2ph does).
  if (x >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u | ((x >> 13) & 0x3ffu) : 0));
  if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (x < 0x38800000u) {                                   // below the smallest normal half
    if (x < 0x33000000u) return (uint16_t)sign;            // rounds to zero
    const uint32_t e = x >> 23;
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 + (113 - e) - 1
    const uint32_t half_m = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    uint32_t r = half_m;
    if (rem > halfway || (rem == halfway && (half_m & 1))) ++r;
    return (uint16_t)(sign | r);
  }
  const uint32_t rounded = x + 0xfffu + ((x >> 13) & 1u);
  return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

// bfloat16 bits -> float (exact).
inline float bf16_to_fp32(uint16_t h) { return hd_bf16_to_fp32(h); }

// float -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN (as GGML does).
inline uint16_t fp32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64);
  return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

// Rounds a float to the nearest half-precision value (what storing it as F16 keeps).
inline float round_to_fp16(float f) { return fp16_to_fp32(fp32_to_fp16(f)); }

}  // namespace pginfer
