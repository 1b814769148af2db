// kernels/cuda/round_activations.cu: one thread per block of 32 (Q8_0) or 256 (Q8_K) values, or per value.
#include "kernels/common/round_activations.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/round_activations.h"

namespace pginfer::cuda {

namespace {

__global__ void round_q8_0_kernel(const float* x, int64_t n_blocks, float* out) {
  early_launch_sync();
  const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= n_blocks) return;
  float v[32];
  for (int j = 0; j < 32; ++j) v[j] = x[32 * b + j];
  round_block_q8_0(v, v);
  for (int j = 0; j < 32; ++j) out[32 * b + j] = v[j];
}

// Q8_K: the 256 values stay in global memory (too many registers), read twice.
__global__ void round_q8_k_kernel(const float* x, int64_t n_blocks, float* out) {
  early_launch_sync();
  const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= n_blocks) return;
  round_block_q8_k(x + 256 * b, out + 256 * b);
}

__global__ void round_value_kernel(TensorType act_type, const float* x, int64_t n, float* out) {
  early_launch_sync();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = round_value(act_type, x[i]);
}

}  // namespace

void round_activations(TensorType act_type, const float* x, int64_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  if (act_type == TensorType::Q8_0) {
    launch_kernel(round_q8_0_kernel, blocks_for(n / 32), kBlock, 0, stream, x, n / 32, out);
  } else if (act_type == TensorType::Q8_K) {
    launch_kernel(round_q8_k_kernel, (unsigned)((n / 256 + 63) / 64), 64, 0, stream, x, n / 256, out);
  } else if (act_type != TensorType::F32 || x != out) {
    launch_kernel(round_value_kernel, blocks_for(n), kBlock, 0, stream, act_type, x, n, out);
  }
}

}  // namespace pginfer::cuda
