// kernels/cuda/attention_tiled.h: causal attention of prompt chunks on tensor cores (flash-style): a block takes a
// tile of up to kTileQueries consecutive tokens of one sequence and one query head, and walks that sequence's keys
// kTileKeys at a time through shared memory, with an online softmax; scores and the weighted sum of values are
// products of F16 tiles accumulated in float (WMMA), so the softmax weights are rounded to F16 before they
// multiply the values (the query is rounded to F16 as by the other kernel; keys and values are F16 already).
// Same contract as attention() (attention.h), which calls it for calls with long chunks.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/attention.h"

namespace pginfer::cuda {

// Queries per tile, and keys per step of the walk.
constexpr int64_t kTileQueries = 64;
constexpr int64_t kTileKeys = 64;

// Whether the tiled kernel handles heads of head_dim values (64 and 128).
bool attention_tiled_supports(int64_t head_dim);

// Whether a call whose longest chunk has `longest_chunk` tokens goes to the tiled kernel rather than attention()'s
// one block per query: from 32 tokens (prompt chunks), when it supports the heads. Its other chunks (decoding
// tokens, say) then take a tile each.
inline bool attention_tiled_pays(int64_t longest_chunk, int64_t head_dim) {
  return longest_chunk >= 32 && attention_tiled_supports(head_dim);
}

// Tiles of a call whose chunks have the given token counts: each chunk cut into runs of kTileQueries tokens (the
// last shorter), as (first token, token count) pairs written to `tiles` when it is not null; returns the count.
int64_t attention_tiles(const int64_t* chunk_tokens, int64_t n_chunks, int32_t* tiles);

// attention() over the tiles (device array of n_tiles pairs from attention_tiles()), whose tokens together are the
// call's: out[t][h] for every token t of every tile, its keys read through `slots` up to its own pos[t].
// head_dim must be supported (attention_tiled_supports).
void attention_tiled(const float* q, const uint16_t* keys, const uint16_t* values, const KvSlots& slots,
                     const int32_t* pos, const int32_t* tiles, int64_t n_tiles, int64_t n_head, int64_t n_head_kv,
                     int64_t head_dim, float scale, float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
