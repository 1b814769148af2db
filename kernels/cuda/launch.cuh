// kernels/cuda/launch.cuh: helpers shared by the kernel files of kernels/cuda (.cu files only).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "kernels/cuda/launch.h"

namespace pginfer::cuda {

// First statement of every kernel: waits for the previous kernel of the stream when this one was launched early,
// then lets the next one launch (launch.h).
__device__ __forceinline__ void early_launch_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), launched early when the stream allows it (set_early_launch).
// Written with cudaLaunchKernelEx, so that the CPU emulation of the tests (tests/cuda_emu) runs the same code.
template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   Args&&... args) {
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  if (early_launch(stream)) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// Declares `name`, the block's dynamic shared memory (the launch's smem bytes), 128-byte aligned.
#if defined(PGI_CUDA_EMULATION)
#define PGI_DYNAMIC_SHARED(name) unsigned char* name = ::pginfer_emu::dynamic_shared()
#else
#define PGI_DYNAMIC_SHARED(name) extern __shared__ __align__(128) unsigned char name[]
#endif

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
