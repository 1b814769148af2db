// engine/attention_layout.h: what one attention call of the GPU backend sends to the device, built on the host from
// the call's chunks and positions (the CUDA backend's attend()). One array of ints, uploaded in one copy:
//
//   positions (one per token)
//   | paged, several chunks: each token's table start (an index into the tables that follow)
//   | paged: each chunk's block table up to its last position's block, padded with zeros to bound / block_size
//   | the tiled kernel's tiles: (first token, token count) pairs
//
// Its size depends only on the chunks' token counts and the key bound, so a recorded pass (a CUDA graph) uploads
// the same sizes while its sequences grow within the bound. Every table entry the kernels may read is checked here,
// so a bad table fails the call instead of making a kernel write outside the pool. CUDA-free: the CPU tests check it
// against the kernels' own slot_of (kernels/common/attention_shape.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/status.h"

namespace pginfer {

// The device layout of one attention call (build_attention_layout).
struct AttentionLayout {
  std::vector<AttentionChunk> chunks;  // the call's chunks, as given
  const int32_t* pos = nullptr;        // the call's positions, as given
  std::vector<int64_t> chunk_tokens;   // the non-empty chunks' token counts
  int64_t n_tokens = 0;                // tokens of the call
  int64_t bound = 0;                   // the key bound the kernels are launched with (cuda::attention_key_bound)
  KvCache* cache = nullptr;            // contiguous: the one cache
  KvPool* pool = nullptr;              // paged: the pool of every chunk
  int block_shift = 0;                 // paged: log2 of the pool's block size
  bool per_token_tables = false;       // paged, several chunks: each token's table start follows the positions
  bool tiled = false;                  // the tiled kernel runs the call (cuda::attention_tiled_pays)
  int64_t tables_at = 0;               // paged: where the block tables start in `ints`
  int64_t tiles_at = 0, n_tiles = 0;   // where the tiles start in `ints`, and how many there are
  std::vector<int32_t> ints;           // what is uploaded

  // Whether it was built for these chunks and this positions array (the same array: a forward pass hands every
  // layer the same one).
  bool built_for(std::span<const AttentionChunk> call_chunks, const int32_t* call_pos) const;
};

// Builds *out for an attention call over `chunks` (the non-empty ones' tokens in order, at positions pos) with heads
// of head_dim values. The non-empty chunks must be one contiguous cache, or paged views of one pool. Internal, with
// *out unusable, when they are not, or on a negative position, a position that a cache or block table does not
// cover, a table entry outside the pool, or heads larger than the kernels take (the executor's checks come first,
// so each is a bug of the caller's).
Status build_attention_layout(std::span<const AttentionChunk> chunks, const int32_t* pos, int64_t head_dim,
                              AttentionLayout* out);

}  // namespace pginfer
