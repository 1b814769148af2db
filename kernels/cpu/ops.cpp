// kernels/cpu/ops.cpp: norms, rotary embedding and activations.
#include "kernels/cpu/ops.h"

#include <cmath>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ops_impl.h"

namespace pginfer {

void rms_norm_row(const float* x, const float* weight, float eps, int64_t n, float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / (double)n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  // GGML scales first, then multiplies by the weight in a separate operation: same rounding here.
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * weight[i];
}

void rope_head(float* x, int64_t head_dim, int64_t n_rot, bool neox, int32_t pos, float freq_base,
               float freq_scale, const float* factors) {
  const float theta_scale = std::pow(freq_base, -2.0f / (float)n_rot);
  float theta = (float)pos;
  const int64_t half = n_rot / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float factor = factors ? factors[i] : 1.0f;
    const float angle = freq_scale * (theta / factor);
    const float c = std::cos(angle);
    const float s = std::sin(angle);
    const int64_t i0 = neox ? i : 2 * i;
    const int64_t i1 = neox ? i + half : 2 * i + 1;
    const float x0 = x[i0];
    const float x1 = x[i1];
    x[i0] = x0 * c - x1 * s;
    x[i1] = x0 * s + x1 * c;
    theta *= theta_scale;
  }
  (void)head_dim;  // dimensions past n_rot are left as they are
}

void swiglu_row(const float* gate, const float* up, int64_t n, float* out) {
  static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
  if (use_avx2) {
    swiglu_row_avx2(gate, up, n, out);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void add_row(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace pginfer
