// kernels/cuda/rms_norm.cu: one block per token row.
#include "kernels/common/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/rms_norm.h"

namespace pginfer::cuda {

namespace {

__global__ void rms_norm_kernel(const float* x, const float* w, float eps, int64_t dim, float* out) {
  early_launch_sync();
  const float* xr = x + blockIdx.x * dim;
  float* yr = out + blockIdx.x * dim;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += (double)(xr[i] * xr[i]);
  __shared__ double partial[kBlock];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const float scale = rms_norm_scale(partial[0], dim, eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = rms_norm_value(xr[i], scale, w[i]);
}

}  // namespace

void rms_norm(const float* x, const float* weight, float eps, int64_t n_tokens, int64_t dim, float* out,
              cudaStream_t stream) {
  if (n_tokens <= 0) return;
  launch_kernel(rms_norm_kernel, (unsigned)n_tokens, kBlock, 0, stream, x, weight, eps, dim, out);
}

}  // namespace pginfer::cuda
