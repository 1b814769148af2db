// kernels/cuda/embed.cu: one thread per 32-value chunk of a gathered row.
#include "kernels/common/dequant_block.h"
#include "kernels/cuda/embed.h"
#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

__global__ void embed_kernel(TensorType type, const uint8_t* table, size_t row_bytes, int64_t dim,
                             const int32_t* ids, float* out) {
  early_launch_sync();
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= dim / kChunk) return;
  const int64_t t = blockIdx.y;
  float v[kChunk];
  dequant_chunk(type, table + (size_t)ids[t] * row_bytes, c, v);
  float* y = out + t * dim + c * kChunk;
  for (int j = 0; j < kChunk; ++j) y[j] = v[j];
}

}  // namespace

bool embed(TensorType type, const void* table, size_t row_bytes, int64_t dim, const int32_t* ids,
           int64_t n_tokens, float* out, cudaStream_t stream) {
  if (type == TensorType::Q8_K || dim % kChunk != 0) return false;
  if (n_tokens <= 0) return true;
  const dim3 grid(blocks_for(dim / kChunk), (unsigned)n_tokens);
  launch_kernel(embed_kernel, grid, kBlock, 0, stream, type, static_cast<const uint8_t*>(table), row_bytes, dim, ids,
                out);
  return true;
}

}  // namespace pginfer::cuda
