// kernels/cuda/argmax.cu: one block per row: the largest value by a block reduction (fmaxf, which never returns a
// NaN over a number), then the smallest index holding it.
#include <climits>

#include "kernels/cuda/argmax.h"
#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* rows, int64_t n_vocab, int32_t* out) {
  early_launch_sync();
  const float* row = rows + (int64_t)blockIdx.x * n_vocab;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  __shared__ float s_max[kThreads / 32];
  __shared__ int s_first[kThreads / 32];
  if (isnan(row[0])) {  // every thread reads it: the block leaves together
    if (tid == 0) out[blockIdx.x] = 0;
    return;
  }
  float m = -INFINITY;
  for (int64_t i = tid; i < n_vocab; i += kThreads) m = fmaxf(m, row[i]);
  m = warp_max(m);
  if (lane == 0) s_max[warp] = m;
  __syncthreads();
  float best = s_max[0];
  for (int w = 1; w < kThreads / 32; ++w) best = fmaxf(best, s_max[w]);
  int first = INT_MAX;
  for (int64_t i = tid; i < n_vocab; i += kThreads) {
    if (row[i] == best) {
      first = (int)i;
      break;
    }
  }
  for (int o = 16; o > 0; o >>= 1) first = min(first, __shfl_xor_sync(0xffffffffu, first, o));
  if (lane == 0) s_first[warp] = first;
  __syncthreads();
  if (tid == 0) {
    first = s_first[0];
    for (int w = 1; w < kThreads / 32; ++w) first = min(first, s_first[w]);
    out[blockIdx.x] = first == INT_MAX ? 0 : first;
  }
}

}  // namespace

void argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* out, cudaStream_t stream) {
  if (n_rows <= 0 || n_vocab <= 0) return;
  launch_kernel(argmax_kernel, (unsigned)n_rows, kThreads, 0, stream, rows, n_vocab, out);
}

}  // namespace pginfer::cuda
