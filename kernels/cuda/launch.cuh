// kernels/cuda/launch.cuh: helpers shared by the kernel files of kernels/cuda (device code only).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pginfer::cuda {

// Threads per block of the simple elementwise kernels.
constexpr int kBlock = 256;

// Blocks of kBlock threads covering n items.
inline unsigned blocks_for(int64_t n) { return (unsigned)((n + kBlock - 1) / kBlock); }

// Sum of v over the 32 lanes of a warp, in every lane.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Maximum of v over the 32 lanes of a warp, in every lane.
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace pginfer::cuda
