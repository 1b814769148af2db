// kernels/cuda/attention.cu: the KV store; one block of kWarps warps per (token, head, key range), each warp an
// online softmax over every kWarps-th key of the range; the warps merged in shared memory and, when the keys
// were split, the ranges merged by a second kernel. Rows are found through slot_of() (contiguous or paged, each
// token through its own sequence's block table).
#include <cuda_fp16.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_tiled.h"
#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = (int)(kMaxHeadDim / 32);
// Keys per range when splitting, most ranges, and the block count below which splitting pays.
constexpr int64_t kKeysPerSplit = 64;
constexpr int kMaxSplits = 64;
constexpr int64_t kSplitBelowBlocks = 1024;

__global__ void kv_store_kernel(const float* k, const float* v, const int32_t* pos, int64_t n_tokens,
                                int64_t kv_dim, KvSlots slots, __half* keys, __half* values) {
  early_launch_sync();
  const int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (id >= n_tokens * kv_dim) return;
  const int64_t t = id / kv_dim, i = id % kv_dim;
  const int64_t at = slot_of(table_of(slots, t), slots.block_shift, pos[t]) * kv_dim + i;
  keys[at] = __float2half_rn(k[id]);
  values[at] = __float2half_rn(v[id]);
}

// With splits == 1 writes the normalised output; else the range's max, sum and unnormalised weighted values
// to partial[((t * n_head + h) * splits + s) * (head_dim + 2)].
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const float* q, const __half* keys, const __half* values, KvSlots slots, const int32_t* pos,
                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, int64_t keys_per_split,
                     float* partial, float* out) {
  early_launch_sync();
  const int64_t h = blockIdx.x, t = blockIdx.y, s = blockIdx.z;
  const int splits = gridDim.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kv_dim = n_head_kv * head_dim;
  const int64_t kvh = h / (n_head / n_head_kv);
  const int64_t n_kv = (int64_t)pos[t] + 1;
  const int64_t begin = s * keys_per_split;
  const int64_t end = min(n_kv, begin + keys_per_split);
  const float* qh = q + (t * n_head + h) * head_dim;
  const int32_t* table = table_of(slots, t);

  float qr[kPerLane], acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    qr[i] = d < head_dim ? __half2float(__float2half_rn(qh[d])) : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = begin + warp; j < end; j += kWarps) {
    const int64_t row = slot_of(table, slots.block_shift, j) * kv_dim + kvh * head_dim;
    const __half* kj = keys + row;
    const __half* vj = values + row;
    float dot = 0.0f, vv[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      vv[i] = 0.0f;
      if (d < head_dim) {
        dot += qr[i] * __half2float(kj[d]);
        vv[i] = __half2float(vj[d]);  // loaded before the softmax needs it
      }
    }
    const float sc = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, sc);
    const float corr = expf(m - m_new);
    const float p = expf(sc - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = acc[i] * corr + p * vv[i];
    m = m_new;
  }
  // Merge the warps' partial softmaxes.
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][kMaxHeadDim];
  if (lane == 0) s_m[warp] = m, s_l[warp] = l;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    if (d < head_dim) s_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, s_m[w]);
  float sum = 0.0f, f[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    f[w] = s_l[w] > 0.0f ? expf(s_m[w] - mx) : 0.0f;
    sum += s_l[w] * f[w];
  }
  if (splits == 1) {
    float* oh = out + (t * n_head + h) * head_dim;
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
      float o = 0.0f;
      for (int w = 0; w < kWarps; ++w) o += s_acc[w][d] * f[w];
      oh[d] = o / sum;
    }
    return;
  }
  float* ps = partial + ((t * n_head + h) * splits + s) * (head_dim + 2);
  if (threadIdx.x == 0) ps[0] = mx, ps[1] = sum;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w) o += s_acc[w][d] * f[w];
    ps[2 + d] = o;
  }
}

// Merges the ranges of one (token, head): one block, a thread per dimension.
__global__ void merge_kernel(const float* partial, int splits, int64_t n_head, int64_t head_dim, float* out) {
  early_launch_sync();
  const int64_t h = blockIdx.x, t = blockIdx.y;
  const float* p = partial + (t * n_head + h) * splits * (head_dim + 2);
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) {
    if (p[s * (head_dim + 2) + 1] > 0.0f) mx = fmaxf(mx, p[s * (head_dim + 2)]);
  }
  float sum = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* ps = p + s * (head_dim + 2);
    if (ps[1] > 0.0f) sum += ps[1] * expf(ps[0] - mx);
  }
  float* oh = out + (t * n_head + h) * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* ps = p + s * (head_dim + 2);
      if (ps[1] > 0.0f) o += ps[2 + d] * expf(ps[0] - mx);
    }
    oh[d] = o / sum;
  }
}

}  // namespace

int attention_splits(int64_t n_tokens, int64_t n_head, int64_t max_kv) {
  if (n_tokens * n_head >= kSplitBelowBlocks) return 1;
  const int64_t s = (max_kv + kKeysPerSplit - 1) / kKeysPerSplit;
  return (int)(s < 1 ? 1 : s > kMaxSplits ? kMaxSplits : s);
}

int64_t attention_scratch_floats(int64_t n_tokens, int64_t n_head, int64_t head_dim, int64_t max_kv) {
  const int splits = attention_splits(n_tokens, n_head, max_kv);
  return splits == 1 ? 0 : n_tokens * n_head * splits * (head_dim + 2);
}

void kv_store(const float* k, const float* v, const int32_t* pos, int64_t n_tokens, int64_t kv_dim,
              const KvSlots& slots, uint16_t* keys, uint16_t* values, cudaStream_t stream) {
  const int64_t n = n_tokens * kv_dim;
  if (n <= 0) return;
  launch_kernel(kv_store_kernel, blocks_for(n), kBlock, 0, stream, k, v, pos, n_tokens, kv_dim, slots,
                reinterpret_cast<__half*>(keys), reinterpret_cast<__half*>(values));
}

void attention(const float* q, const uint16_t* keys, const uint16_t* values, const KvSlots& slots, const int32_t* pos,
               int64_t n_tokens, int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, int64_t max_kv,
               float* scratch, float* out, cudaStream_t stream) {
  if (n_tokens <= 0) return;
  const int splits = attention_splits(n_tokens, n_head, max_kv);
  const int64_t per_split = splits == 1 ? max_kv : (max_kv + splits - 1) / splits;
  const dim3 grid((unsigned)n_head, (unsigned)n_tokens, (unsigned)splits);
  launch_kernel(attention_kernel, grid, kWarps * 32, 0, stream, q, reinterpret_cast<const __half*>(keys),
                reinterpret_cast<const __half*>(values), slots, pos, n_head, n_head_kv, head_dim, scale, per_split,
                scratch, out);
  if (splits > 1) {
    launch_kernel(merge_kernel, dim3((unsigned)n_head, (unsigned)n_tokens), 128, 0, stream, scratch, splits, n_head,
                  head_dim, out);
  }
}

}  // namespace pginfer::cuda
