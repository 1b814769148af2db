// kernels/cuda/attention.h: causal attention over a contiguous F16 KV cache on the GPU.
//
// The cache of one layer holds, for keys and values each, `capacity` slots of kv_dim halves (slot = position),
// as the CPU backend's does. A simple correct version: one block per (token, head, key range), each warp
// running an online softmax over a share of the keys; the paged cache and a tiled prefill kernel come later.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pginfer::cuda {

// Largest head dimension attention() supports.
constexpr int64_t kMaxHeadDim = 256;

// Stores k[t] and v[t] (n_tokens rows of kv_dim floats) as halves at slot pos[t] of keys and values.
void kv_store(const float* k, const float* v, const int32_t* pos, int64_t n_tokens, int64_t kv_dim, uint16_t* keys,
              uint16_t* values, cudaStream_t stream);

// Key-range splits attention() uses for n_tokens queries of n_head heads over at most max_kv slots, and the
// floats of scratch it then needs (0 when it needs none).
int attention_splits(int64_t n_tokens, int64_t n_head, int64_t max_kv);
int64_t attention_scratch_floats(int64_t n_tokens, int64_t n_head, int64_t head_dim, int64_t max_kv);

// out[t][h] = sum_j softmax_j(scale * q[t][h] . key_j) value_j over slots j <= pos[t], for n_head query heads
// sharing n_head_kv key/value heads (grouped); q and out are n_tokens rows of n_head * head_dim floats. The
// query is rounded to F16 first, as the CPU does. head_dim <= kMaxHeadDim; max_kv >= every pos[t] + 1. With
// few queries (decoding) the keys are split into ranges handled by separate blocks whose partial softmaxes are
// merged afterwards (flash-decoding), using `scratch` (attention_scratch_floats floats).
void attention(const float* q, const uint16_t* keys, const uint16_t* values, const int32_t* pos, int64_t n_tokens,
               int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, int64_t max_kv, float* scratch,
               float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
