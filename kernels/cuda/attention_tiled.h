// kernels/cuda/attention_tiled.h: causal attention of prompt chunks on tensor cores (flash-style): a block takes a
// tile of up to kTileQueries consecutive tokens of one sequence and one query head, and walks that sequence's keys
// kTileKeys at a time through shared memory, with an online softmax; scores and the weighted sum of values are
// products of F16 tiles accumulated in float (WMMA), so the softmax weights are rounded to F16 before they
// multiply the values (the query is rounded to F16 as by the other kernel; keys and values are F16 already).
// Same contract as attention() (attention.h), which calls it for calls with long chunks. Two differences remain:
// a decoding token that shares a call with a prompt chunk is computed here (F16 weights) rather than by attention()
// (float weights), so its result depends slightly on what shares its step; and a row multiplies the values of the
// later keys of its tile by zero weights, so a value that overflowed F16 (an infinity) there makes the row NaN,
// where attention() never reads it (activations that large have overflowed on the CPU too).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/attention.h"

namespace pginfer::cuda {

// attention() over the tiles (device array of n_tiles pairs from attention_tiles()), whose tokens together are the
// call's: out[t][h] for every token t of every tile, its keys read through `slots` up to its own pos[t].
// head_dim must be supported (attention_tiled_supports).
void attention_tiled(const float* q, const uint16_t* keys, const uint16_t* values, const KvSlots& slots,
                     const int32_t* pos, const int32_t* tiles, int64_t n_tiles, int64_t n_head, int64_t n_head_kv,
                     int64_t head_dim, float scale, float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
