// kernels/cuda/rope.cu: one thread per dimension pair.
#include "kernels/common/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/rope.h"

namespace pginfer::cuda {

namespace {

// Per token, its heads of x then its heads of y (none when n_y is 0).
__global__ void rope_kernel(float* x, int64_t n_x, float* y, int64_t n_y, const int32_t* pos, int64_t n_tokens,
                            int64_t head_dim, int64_t n_rot, bool neox, float theta_scale, float freq_scale,
                            const float* factors) {
  early_launch_sync();
  const int64_t half = n_rot / 2, heads = n_x + n_y;
  const int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (id >= n_tokens * heads * half) return;
  const int64_t i = id % half;
  const int64_t th = id / half;  // token * heads + head
  const int64_t t = th / heads, head = th % heads;
  float* h = head < n_x ? x + (t * n_x + head) * head_dim : y + (t * n_y + head - n_x) * head_dim;
  const float angle = rope_angle(pos[t], i, theta_scale, freq_scale, factors ? factors[i] : 1.0f);
  int64_t i0, i1;
  rope_pair_index(neox, i, n_rot, &i0, &i1);
  rope_rotate(h[i0], h[i1], cosf(angle), sinf(angle), &h[i0], &h[i1]);
}

}  // namespace

void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t n_rot,
          bool neox, float theta_scale, float freq_scale, const float* factors, cudaStream_t stream) {
  rope_pair(x, n_heads, nullptr, 0, pos, n_tokens, head_dim, n_rot, neox, theta_scale, freq_scale, factors, stream);
}

void rope_pair(float* x, int64_t n_x, float* y, int64_t n_y, const int32_t* pos, int64_t n_tokens, int64_t head_dim,
               int64_t n_rot, bool neox, float theta_scale, float freq_scale, const float* factors,
               cudaStream_t stream) {
  const int64_t n = n_tokens * (n_x + n_y) * (n_rot / 2);
  if (n <= 0) return;
  launch_kernel(rope_kernel, blocks_for(n), kBlock, 0, stream, x, n_x, y, n_y, pos, n_tokens, head_dim, n_rot, neox,
                theta_scale, freq_scale, factors);
}

}  // namespace pginfer::cuda
