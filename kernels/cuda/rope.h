// kernels/cuda/rope.h: rotary position embedding on the GPU, both pairings.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pginfer::cuda {

// Rotates, in place, the first n_rot dimensions of each of n_heads heads of head_dim values of each of
// n_tokens tokens at positions pos[t] (device). neox pairs (i, i + n_rot/2), else (2i, 2i+1). theta_scale
// is rope_theta_scale(freq_base, n_rot) (kernels/common/elementwise.h); factors (device, n_rot/2 values)
// may be null.
void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t n_rot,
          bool neox, float theta_scale, float freq_scale, const float* factors, cudaStream_t stream);

// rope() of x (n_x heads per token) and of y (n_y heads per token) in one launch: a layer's queries and keys.
void rope_pair(float* x, int64_t n_x, float* y, int64_t n_y, const int32_t* pos, int64_t n_tokens, int64_t head_dim,
               int64_t n_rot, bool neox, float theta_scale, float freq_scale, const float* factors,
               cudaStream_t stream);

}  // namespace pginfer::cuda
