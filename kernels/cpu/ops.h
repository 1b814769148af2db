// kernels/cpu/ops.h: the elementwise and per-row operations of a transformer layer, on floats.
//
// Each follows GGML's CPU implementation closely enough that results agree with llama.cpp's to the last
// bit or nearly (the comments say where and why they may differ).
#pragma once

#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// out = x / sqrt(mean(x^2) + eps) * weight over one row of n values. The sum of squares is taken in
// double, as GGML does.
void rms_norm_row(const float* x, const float* weight, float eps, int64_t n, float* out);

// Rotary embedding of one head of `head_dim` values at position `pos`, in place, on the first n_rot
// dimensions. neox = false pairs (2i, 2i+1), neox = true pairs (i, i + n_rot/2). The angle of pair i is
// pos * freq_scale * base^(-2i/n_rot) / factors[i] (factors may be null), computed as GGML does: the
// per-pair power by repeated multiplication in float, so angles round identically.
void rope_head(float* x, int64_t head_dim, int64_t n_rot, bool neox, int32_t pos, float freq_base,
               float freq_scale, const float* factors);

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)).
void swiglu_row(const float* gate, const float* up, int64_t n, float* out);

// out[i] = a[i] + b[i].
void add_row(const float* a, const float* b, int64_t n, float* out);

}  // namespace pginfer
