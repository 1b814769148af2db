// kernels/common/elementwise.h: the per-element formulas of RMS normalisation, rotary embedding and SwiGLU,
// for the CPU and the GPU alike.
//
// They spell out the float operations of kernels/cpu/ops.cpp in the same order (the CPU unit test
// tests/unit/elementwise_common_test.cpp checks them against it bit for bit), so a kernel built on them
// differs from the CPU only where the device's libm (expf, sinf, cosf) or a summation order differs.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"

namespace pginfer {

// The factor 1 / sqrt(mean(x^2) + eps) of RMS normalisation, from the sum of squares taken in double.
PGI_HOST_DEVICE PGI_FORCEINLINE float rms_norm_scale(double sum_squares, int64_t n, float eps) {
  const float mean = (float)(sum_squares / (double)n);
  return 1.0f / sqrtf(mean + eps);
}

// One normalised value: the scale first, then the weight, as GGML rounds them.
PGI_HOST_DEVICE PGI_FORCEINLINE float rms_norm_value(float x, float scale, float weight) {
  return (x * scale) * weight;
}

// The rotation angle of dimension pair i: theta = pos * theta_scale^i by repeated float multiplication
// (GGML's order, so angles round as the CPU's do), then freq_scale * (theta / factor).
// theta_scale is freq_base^(-2 / n_rot), computed once on the host (rope_theta_scale).
PGI_HOST_DEVICE PGI_FORCEINLINE float rope_angle(int32_t pos, int64_t i, float theta_scale, float freq_scale,
                                                 float factor) {
  float theta = (float)pos;
  for (int64_t k = 0; k < i; ++k) theta *= theta_scale;
  return freq_scale * (theta / factor);
}

// freq_base^(-2 / n_rot), as kernels/cpu/ops.cpp computes it (host only: device pow may round otherwise).
inline float rope_theta_scale(float freq_base, int64_t n_rot) { return std::pow(freq_base, -2.0f / (float)n_rot); }

// Index of the two dimensions of pair i: adjacent (2i, 2i+1) or, for NEOX, halves (i, i + n_rot/2).
PGI_HOST_DEVICE PGI_FORCEINLINE void rope_pair_index(bool neox, int64_t i, int64_t n_rot, int64_t* i0, int64_t* i1) {
  *i0 = neox ? i : 2 * i;
  *i1 = neox ? i + n_rot / 2 : 2 * i + 1;
}

// Rotates (x0, x1) by the angle whose cosine and sine are c and s.
PGI_HOST_DEVICE PGI_FORCEINLINE void rope_rotate(float x0, float x1, float c, float s, float* y0, float* y1) {
  *y0 = x0 * c - x1 * s;
  *y1 = x0 * s + x1 * c;
}

// silu(gate) * up, silu(g) = g / (1 + exp(-g)).
PGI_HOST_DEVICE PGI_FORCEINLINE float swiglu_value(float gate, float up) {
  return (gate / (1.0f + expf(-gate))) * up;
}

}  // namespace pginfer
