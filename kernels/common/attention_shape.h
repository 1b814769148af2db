// kernels/common/attention_shape.h: the contract between the GPU attention kernels (kernels/cuda/attention.h,
// attention_tiled.h) and the host code that prepares their calls (engine/attention_layout.h): where the rows of a
// position lie (KvSlots, slot_of), the key bound a call is launched with, and how the tiled kernel cuts a call into
// tiles. Plain C++ usable on the host and the device, so that the CPU tests check the same functions the kernels
// run (tests/unit/attention_layout_test.cpp).
#pragma once

#include <cstdint>

#include "kernels/common/host_device.h"

namespace pginfer::cuda {

// Largest head dimension attention() supports.
constexpr int64_t kMaxHeadDim = 256;

// Queries per tile of the tiled kernel, and keys per step of its walk.
constexpr int64_t kTileQueries = 64;
constexpr int64_t kTileKeys = 64;

// Where the rows of positions lie in a layer's keys and values.
struct KvSlots {
  // Device block tables (block ids in position order), one per sequence, concatenated; nullptr: slot = position.
  const int32_t* blocks = nullptr;
  // Per token (device), the index in `blocks` of the first entry of its sequence's table; nullptr: every token's
  // table starts at blocks[0] (one sequence).
  const int32_t* table_start = nullptr;
  int block_shift = 0;  // log2 of the positions per block (with block tables)
};

// Token t's block table: null for a contiguous cache.
PGI_HOST_DEVICE PGI_FORCEINLINE const int32_t* table_of(const KvSlots& s, int64_t t) {
  if (s.blocks == nullptr) return nullptr;
  return s.table_start == nullptr ? s.blocks : s.blocks + s.table_start[t];
}

// The slot of position p of a sequence whose block table is `table`: p itself in a contiguous cache (no table).
PGI_HOST_DEVICE PGI_FORCEINLINE int64_t slot_of(const int32_t* table, int block_shift, int64_t p) {
  if (table == nullptr) return p;
  const int64_t mask = (int64_t{1} << block_shift) - 1;
  return ((int64_t)table[p >> block_shift] << block_shift) | (p & mask);
}

// The bound on the keys that attention() is given for a call whose largest position is max_kv - 1: max_kv rounded
// up to a multiple of 256 and of the block size, so that decoding steps of a sequence share their launch shape
// (and a CUDA graph) over 256 positions. Each query still stops at its own position.
inline int64_t attention_key_bound(int64_t max_kv, int64_t block_size) {
  const int64_t step = block_size > 256 ? block_size : 256;
  return (max_kv + step - 1) / step * step;
}

// Whether the tiled kernel handles heads of head_dim values (64 and 128).
inline bool attention_tiled_supports(int64_t head_dim) { return head_dim == 64 || head_dim == 128; }

// Whether a call whose longest chunk has `longest_chunk` tokens goes to the tiled kernel rather than attention()'s
// one block per query: from 32 tokens (prompt chunks), when it supports the heads. Its other chunks (decoding
// tokens, say) then take a tile each (kernels/cuda/attention_tiled.h says what that changes for them).
inline bool attention_tiled_pays(int64_t longest_chunk, int64_t head_dim) {
  return longest_chunk >= 32 && attention_tiled_supports(head_dim);
}

// Tiles of a call whose chunks have the given token counts: each chunk cut into runs of kTileQueries tokens (the
// last shorter), as (first token, token count) pairs written to `tiles` when it is not null; returns the count.
inline int64_t attention_tiles(const int64_t* chunk_tokens, int64_t n_chunks, int32_t* tiles) {
  int64_t n = 0, first = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    for (int64_t f = 0; f < chunk_tokens[c]; f += kTileQueries, ++n) {
      if (tiles != nullptr) {
        tiles[2 * n] = (int32_t)(first + f);
        tiles[2 * n + 1] = (int32_t)(chunk_tokens[c] - f < kTileQueries ? chunk_tokens[c] - f : kTileQueries);
      }
    }
    first += chunk_tokens[c];
  }
  return n;
}

}  // namespace pginfer::cuda
