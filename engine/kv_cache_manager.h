// engine/kv_cache_manager.h: per-request block tables over a BlockPool, and the prefix cache's lookups and
// publication (the middle layer of scheduler -> KV cache manager -> block pool).
//
// A request's block table maps its token positions to KV slots: position p lives in block
// table[p / block_size] at offset p % block_size (slot_of). Tables only grow while a request runs, and are
// returned whole (tail first, so the LRU evicts a prefix's tail before its head) when it finishes or is
// preempted.
//
// Prefix cache, following vLLM v1: full blocks are chained by hash (hash_block of the parent's hash, the
// manager's extra key and the block's tokens). get_computed_blocks finds the longest chain of cached full
// blocks at the start of a prompt, never the whole prompt (the last token is always computed so that its
// logits exist). allocate_slots publishes a request's blocks as soon as the tokens they will hold are known
// and scheduled, so a request admitted later in the same step can share blocks being computed in that step.
// That needs one promise from the executor: within each layer, the K/V of every scheduled token is written
// to its slot before any attention of that layer reads the cache. If a step fails, discard() unpublishes
// the blocks whose K/V was not computed.
//
// Per-request opt-out: a request added with prefix_caching = false neither reads nor publishes cached
// blocks.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/block_pool.h"
#include "engine/status.h"

namespace pginfer {

// Identity of a request, unique among live requests.
using RequestId = uint64_t;

// The KV slot of token position `pos` in a sequence with block table `table` (pos must be covered).
inline int32_t slot_of(std::span<const BlockId> table, int32_t pos, int32_t block_size) {
  return table[(size_t)(pos / block_size)] * block_size + pos % block_size;
}

// A cached prefix found for a prompt: blocks to share and the tokens they cover.
struct PrefixHit {
  std::vector<BlockId> blocks;    // cached blocks, in sequence order
  std::vector<BlockHash> hashes;  // their hashes, in the same order
  int32_t num_tokens = 0;         // blocks.size() * block_size
};

// Prefix-cache accounting at token level (what llm_stats() reports).
struct PrefixCacheStats {
  int64_t admissions = 0;     // allocate_slots calls that took a request's first blocks
  int64_t prompt_tokens = 0;  // tokens those admissions needed K/V for (the prompt, plus output when recomputed)
  int64_t hit_tokens = 0;     // of those, tokens served from the cache
  // hit_tokens / prompt_tokens (0 when nothing was admitted).
  double hit_rate() const { return prompt_tokens ? (double)hit_tokens / (double)prompt_tokens : 0.0; }
};

// Block tables of the live requests of one model, over one pool. Not thread-safe (the scheduler's thread).
class KvCacheManager {
 public:
  // A manager over `pool` (not owned, must outlive it); `extra_key` enters every block hash (the model's
  // identity: blocks of different models never match).
  KvCacheManager(BlockPool* pool, uint64_t extra_key) : pool_(pool), extra_key_(extra_key) {}

  // The pool underneath.
  BlockPool* pool() const { return pool_; }
  // Tokens per block.
  int32_t block_size() const { return pool_->block_size(); }

  // Registers request `id` with an empty table; prefix_caching false opts it out of the prefix cache.
  // InvalidArgument if `id` is already registered.
  Status add_request(RequestId id, bool prefix_caching);
  // True while `id` is registered.
  bool has_request(RequestId id) const { return requests_.count(id) != 0; }

  // The longest cached prefix of full blocks of `tokens` for request `id`, stopping before the block that
  // holds the last token. Empty when the request opted out or is unknown. Takes no references: pass the
  // result to allocate_slots before allocating anything else.
  PrefixHit get_computed_blocks(RequestId id, std::span<const int32_t> tokens);

  // Grows request `id`'s table so it covers num_computed + hit.num_tokens + num_new_tokens positions:
  // shares the blocks of `hit` (only on an empty table, with num_computed 0), allocates new ones, and
  // publishes the full blocks whose tokens are all scheduled. `tokens` are all the request's known token
  // ids (prompt and output); num_computed counts the positions whose K/V the table already holds. Sets
  // *allocated false, changing nothing, when the pool cannot supply the blocks. InvalidArgument for an
  // unknown request, counts that do not add up or a stale hit (a shared block evicted since the lookup).
  Status allocate_slots(RequestId id, std::span<const int32_t> tokens, int32_t num_computed, int32_t num_new_tokens,
                        const PrefixHit& hit, bool* allocated);

  // Blocks allocate_slots would have to take from the free queue for this growth (new blocks plus free
  // cached blocks of `hit` it would revive), or -1 for an unknown request.
  int32_t blocks_needed(RequestId id, int32_t num_computed, int32_t num_new_tokens, const PrefixHit& hit) const;

  // Returns all of request `id`'s blocks to the pool, tail first (published ones stay cached), and forgets
  // the request. InvalidArgument for an unknown request.
  Status free(RequestId id);

  // Like free, but first unpublishes the request's blocks from position num_valid_tokens on (their K/V was
  // never computed, as after a failed step). InvalidArgument for an unknown request.
  Status discard(RequestId id, int32_t num_valid_tokens);

  // Request `id`'s block table, or an empty span for an unknown request (valid until its next change).
  std::span<const BlockId> block_table(RequestId id) const;
  // Number of live requests.
  int32_t num_requests() const { return (int32_t)requests_.size(); }
  // Token-level prefix-cache accounting.
  const PrefixCacheStats& stats() const { return stats_; }

 private:
  // One live request's KV state.
  struct Entry {
    std::vector<BlockId> table;      // blocks in sequence order
    std::vector<BlockHash> hashes;   // chain hashes of the first hashes.size() full blocks
    int32_t num_published = 0;       // leading blocks already offered to the cache
    bool prefix_caching = true;      // false: opted out (no lookups, no publication)
  };
  // Publishes `e`'s full blocks up to `num_full` (hashing them from `tokens`).
  Status publish(Entry& e, std::span<const int32_t> tokens, int32_t num_full);

  BlockPool* pool_;                                // the pool underneath (not owned)
  uint64_t extra_key_;                             // enters every block hash (model identity)
  std::unordered_map<RequestId, Entry> requests_;  // live requests
  PrefixCacheStats stats_;                         // token-level counters
};

}  // namespace pginfer
