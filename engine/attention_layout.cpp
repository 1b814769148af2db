// engine/attention_layout.cpp: the device layout of a GPU attention call (attention_layout.h).
#include "engine/attention_layout.h"

#include <algorithm>
#include <string>

#include "kernels/common/attention_shape.h"

namespace pginfer {

bool AttentionLayout::built_for(std::span<const AttentionChunk> call_chunks, const int32_t* call_pos) const {
  return pos == call_pos && std::equal(call_chunks.begin(), call_chunks.end(), chunks.begin(), chunks.end(),
                                       [](const AttentionChunk& x, const AttentionChunk& y) {
                                         return x.kv == y.kv && x.n_tokens == y.n_tokens;
                                       });
}

namespace {

// Appends the block tables of the paged chunks of *a (and, with several, each token's table start): each table up
// to its last position's block, every entry checked, padded with zeros to the bound's blocks.
Status append_block_tables(std::span<const AttentionChunk> chunks, const int32_t* pos, AttentionLayout* a) {
  std::vector<int32_t>& ints = a->ints;
  const int64_t n_blocks = a->pool->n_blocks();
  const int64_t padded = a->bound >> a->block_shift;
  int64_t t0 = 0;
  for (const AttentionChunk& c : chunks) {
    if (c.n_tokens <= 0) continue;
    const PagedKvCache& seq = *c.kv->as_paged();
    const int32_t last = *std::max_element(pos + t0, pos + t0 + c.n_tokens);
    const int64_t n_table = ((int64_t)last >> a->block_shift) + 1;
    if (n_table > (int64_t)seq.blocks.size()) {
      return internal_error("position " + std::to_string(last) + " lies beyond the block table's " +
                            std::to_string(seq.blocks.size()) + " blocks");
    }
    const int64_t start = (int64_t)ints.size() - a->tables_at;
    if (start + padded > INT32_MAX) return internal_error("the block tables of one attention call exceed 2^31 entries");
    if (a->per_token_tables) {
      std::fill(ints.begin() + a->n_tokens + t0, ints.begin() + a->n_tokens + t0 + c.n_tokens, (int32_t)start);
    }
    for (int64_t i = 0; i < n_table; ++i) {
      const int32_t b = seq.blocks[i];
      if (b < 0 || b >= n_blocks) {
        return internal_error("block table entry " + std::to_string(b) + " outside the pool's " +
                              std::to_string(n_blocks) + " blocks");
      }
      ints.push_back(b);
    }
    ints.resize(ints.size() + (size_t)(padded - n_table), 0);
    t0 += c.n_tokens;
  }
  return Status::ok_status();
}

}  // namespace

Status build_attention_layout(std::span<const AttentionChunk> chunks, const int32_t* pos, int64_t head_dim,
                              AttentionLayout* out) {
  AttentionLayout& a = *out;
  a = AttentionLayout{};
  a.chunks.assign(chunks.begin(), chunks.end());
  a.pos = pos;
  int64_t longest = 0;
  for (const AttentionChunk& c : chunks) {
    if (c.n_tokens <= 0) continue;
    PagedKvCache* paged = c.kv->as_paged();
    if (a.chunk_tokens.empty()) {
      a.pool = paged ? &paged->pool() : nullptr;
      a.cache = paged ? nullptr : c.kv;
    } else if (paged == nullptr || &paged->pool() != a.pool) {
      return internal_error("one attention call over several caches that are not views of one pool");
    }
    a.n_tokens += c.n_tokens;
    longest = std::max(longest, c.n_tokens);
    a.chunk_tokens.push_back(c.n_tokens);
  }
  if (a.n_tokens == 0) return Status::ok_status();
  if (head_dim > cuda::kMaxHeadDim) {
    return internal_error("head dimension " + std::to_string(head_dim) + " exceeds the CUDA attention kernel's " +
                          std::to_string(cuda::kMaxHeadDim));
  }
  int64_t max_kv = 0;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    if (pos[t] < 0) return internal_error("attention at negative position " + std::to_string(pos[t]));
    max_kv = std::max<int64_t>(max_kv, (int64_t)pos[t] + 1);
  }
  const int64_t block_size = a.pool ? a.pool->block_size() : 1;
  while ((int64_t{1} << a.block_shift) < block_size) ++a.block_shift;
  if ((int64_t{1} << a.block_shift) != block_size) {
    return internal_error("a KV pool's block size of " + std::to_string(block_size) + " is not a power of two");
  }
  // The kernels' shape depends on this bound, not on max_kv: it stays the same over 256 decoding steps.
  a.bound = cuda::attention_key_bound(max_kv, block_size);
  a.ints.assign(pos, pos + a.n_tokens);
  if (a.pool != nullptr) {
    a.per_token_tables = a.chunk_tokens.size() > 1;
    a.tables_at = a.per_token_tables ? 2 * a.n_tokens : a.n_tokens;
    a.ints.resize(a.tables_at);
    PGI_RETURN_IF_ERROR(append_block_tables(chunks, pos, &a));
  } else if (max_kv > a.cache->capacity()) {
    return internal_error("position " + std::to_string(max_kv - 1) + " beyond the KV cache's " +
                          std::to_string(a.cache->capacity()));
  }
  const int64_t n_chunks = (int64_t)a.chunk_tokens.size();
  a.tiled = cuda::attention_tiled_pays(longest, head_dim);
  a.tiles_at = (int64_t)a.ints.size();
  a.n_tiles = a.tiled ? cuda::attention_tiles(a.chunk_tokens.data(), n_chunks, nullptr) : 0;
  a.ints.resize(a.tiles_at + 2 * a.n_tiles);
  if (a.tiled) cuda::attention_tiles(a.chunk_tokens.data(), n_chunks, a.ints.data() + a.tiles_at);
  return Status::ok_status();
}

}  // namespace pginfer
