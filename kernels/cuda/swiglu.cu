// kernels/cuda/swiglu.cu: one thread per value.
#include "kernels/common/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/swiglu.h"

namespace pginfer::cuda {

namespace {

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t n, float* out) {
  early_launch_sync();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = swiglu_value(gate[i], up[i]);
}

}  // namespace

void swiglu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  launch_kernel(swiglu_kernel, blocks_for(n), kBlock, 0, stream, gate, up, n, out);
}

}  // namespace pginfer::cuda
