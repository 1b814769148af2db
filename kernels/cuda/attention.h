// kernels/cuda/attention.h: causal attention over an F16 KV cache on the GPU, contiguous or paged.
//
// The cache of one layer holds, for keys and values each, slots of kv_dim halves, as the CPU backend's does.
// Where position p of token t's sequence lives is given by a KvSlots: slot p in a contiguous cache, and in a
// paged one slot table[p / B] * B + p % B for blocks of B = 2^block_shift positions listed by that sequence's
// block table in device memory. One call may serve several sequences of one paged pool (a serving step):
// their tables are concatenated and each token says where its own starts. One sequence, contiguous or paged,
// is the case of a single table; all go through the same kernels (the slot is computed per row), so they
// compute the same sums in the same order. attention() runs one block per (token, head, key range), each warp
// running an online softmax over a share of the keys (decoding); calls with prompt chunks go to the tiled kernel
// of attention_tiled.h instead. KvSlots, the key bound and the tiles are plain C++, shared with the host code that
// prepares calls (kernels/common/attention_shape.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/common/attention_shape.h"

namespace pginfer::cuda {

// Stores k[t] and v[t] (n_tokens rows of kv_dim floats) as halves at the slot of position pos[t] (device
// array) of token t's sequence in keys and values; no two tokens may name the same slot.
void kv_store(const float* k, const float* v, const int32_t* pos, int64_t n_tokens, int64_t kv_dim,
              const KvSlots& slots, uint16_t* keys, uint16_t* values, cudaStream_t stream);

// Key-range splits attention() uses for n_tokens queries of n_head heads over at most max_kv slots, and the
// floats of scratch it then needs (0 when it needs none).
int attention_splits(int64_t n_tokens, int64_t n_head, int64_t max_kv);
int64_t attention_scratch_floats(int64_t n_tokens, int64_t n_head, int64_t head_dim, int64_t max_kv);

// out[t][h] = sum_j softmax_j(scale * q[t][h] . key_j) value_j over positions j <= pos[t] (device array) of
// token t's sequence, the rows of position j read at its slot (`slots`), for n_head query heads sharing n_head_kv key/value heads
// (grouped); q and out are n_tokens rows of n_head * head_dim floats. The query is rounded to F16 first, as the
// CPU does. head_dim <= kMaxHeadDim; max_kv >= every pos[t] + 1. With few queries (decoding) the keys are split
// into ranges handled by separate blocks whose partial softmaxes are merged afterwards (flash-decoding), using
// `scratch` (attention_scratch_floats floats); each token stops at its own pos[t], so ranges beyond it are
// empty. Enqueued after kv_store on the same stream, a query sees the keys and values of every token stored
// before it, its own call's included (every sequence's).
void attention(const float* q, const uint16_t* keys, const uint16_t* values, const KvSlots& slots, const int32_t* pos,
               int64_t n_tokens, int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, int64_t max_kv,
               float* scratch, float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
