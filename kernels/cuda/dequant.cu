// kernels/cuda/dequant.cu: one thread per 32-value chunk (dequantization) or per value (conversions).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/common/dequant_block.h"
#include "kernels/cuda/dequant.h"
#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

__global__ void dequantize_f16_kernel(TensorType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t k,
                                      __half* out) {
  early_launch_sync();
  const int64_t chunks = k / kChunk;
  const int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (id >= rows * chunks) return;
  const int64_t r = id / chunks, c = id % chunks;
  float v[kChunk];
  dequant_chunk(type, w + r * row_bytes, c, v);
  __half2* y = reinterpret_cast<__half2*>(out + r * k + c * kChunk);
  for (int j = 0; j < kChunk / 2; ++j) y[j] = __floats2half2_rn(v[2 * j], v[2 * j + 1]);
}

__global__ void f32_to_f16_kernel(const float* x, int64_t n, __half* out) {
  early_launch_sync();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2half_rn(x[i]);
}

__global__ void f32_to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  early_launch_sync();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

bool dequantize_to_f16(TensorType type, const void* w, size_t row_bytes, int64_t rows, int64_t k, uint16_t* out,
                       cudaStream_t stream) {
  if (type == TensorType::Q8_K || k % kChunk != 0) return false;
  const int64_t n = rows * (k / kChunk);
  if (n <= 0) return true;
  launch_kernel(dequantize_f16_kernel, blocks_for(n), kBlock, 0, stream, type, static_cast<const uint8_t*>(w),
                row_bytes, rows, k, reinterpret_cast<__half*>(out));
  return true;
}

void convert_f32_to_f16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream) {
  if (n <= 0) return;
  launch_kernel(f32_to_f16_kernel, blocks_for(n), kBlock, 0, stream, x, n, reinterpret_cast<__half*>(out));
}

void convert_f32_to_bf16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream) {
  if (n <= 0) return;
  launch_kernel(f32_to_bf16_kernel, blocks_for(n), kBlock, 0, stream, x, n,
                reinterpret_cast<__nv_bfloat16*>(out));
}

}  // namespace pginfer::cuda
