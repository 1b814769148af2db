// kernels/cuda/add.cu: one thread per value.
#include "kernels/cuda/add.h"
#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* out) {
  early_launch_sync();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t n, int64_t width) {
  early_launch_sync();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = y[i] + bias[i % width];
}

}  // namespace

void add(const float* a, const float* b, int64_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  launch_kernel(add_kernel, blocks_for(n), kBlock, 0, stream, a, b, n, out);
}

void add_bias(float* y, const float* bias, int64_t n_rows, int64_t width, cudaStream_t stream) {
  const int64_t n = n_rows * width;
  if (n <= 0) return;
  launch_kernel(add_bias_kernel, blocks_for(n), kBlock, 0, stream, y, bias, n, width);
}

}  // namespace pginfer::cuda
