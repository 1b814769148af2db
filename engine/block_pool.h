// engine/block_pool.h: the KV block pool of one model: N fixed-size blocks, their reference counts, the
// prefix-cache hash map and LRU eviction (the bottom layer of scheduler -> KV cache manager -> block pool,
// as vLLM v1 splits them).
//
// A block holds the K/V of `block_size` consecutive tokens of one sequence; the pool hands out block ids
// only (the backend owns the memory, block id b covering slots [b * block_size, (b + 1) * block_size)).
//
// Every block is in exactly one of two states:
//   in use  (ref_count > 0): held by one or more requests' block tables;
//   free    (ref_count == 0): in the free queue, an LRU list. A free block may still carry a hash, in which
//           case its K/V stays valid and a later request with the same prefix can take it back (`touch`).
// Allocation takes blocks from the front of the free queue, dropping the hash of a cached block it reuses (an
// eviction). A freed block that is cached is appended at the back, in the order the caller gives, so callers
// free a sequence's blocks tail first: the tail of a prefix is evicted before its head. A freed block that is
// not cached holds nothing worth keeping: it goes to the front and is reused first, so a cached block is
// evicted only when no uncached block is free (and a pool in host memory only touches the pages it needs while
// nothing is cached).
//
// Prefix cache: a full block is cached under a 64-bit hash of (parent block's hash, extra key, its tokens),
// see hash_block. The map holds one block per hash; a second full block with the same content stays
// uncached (its table entry is unaffected, so block tables stay append-only). Collisions: each cached block
// keeps its parent hash, extra key and token ids, and a lookup compares them, so two different blocks that
// happen to share a 64-bit hash are told apart. A false hit would need the parent chain itself to collide
// (a different prefix whose whole chain hashes to the same 64-bit parent value while a stale child stays
// cached): about 2^-64 per lookup, accepted.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/status.h"

namespace pginfer {

// Index of a block in its pool, 0 .. num_blocks - 1.
using BlockId = int32_t;
// 64-bit identity of a full block's content and position in its prefix chain.
using BlockHash = uint64_t;

// Parent hash used for a sequence's first block.
constexpr BlockHash kRootBlockHash = 0x6a09e667f3bcc908ull;

// Hash of one full block: its parent block's hash (kRootBlockHash for the first), an extra key (the model's
// identity, and anything else the K/V depends on) and its token ids. Splitmix64-style mixing per item.
BlockHash hash_block(BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens);

// One block's bookkeeping (the K/V lives in the backend).
struct KvBlock {
  BlockId id = 0;            // index in the pool
  int32_t ref_count = 0;     // requests holding it; 0 means it is in the free queue
  bool has_hash = false;     // cached: findable by `hash` through the pool's map
  BlockHash hash = 0;        // valid when has_hash
  BlockId prev_free = -1;    // free-queue neighbour toward the front (-1: none)
  BlockId next_free = -1;    // free-queue neighbour toward the back (-1: none)
  bool in_free_queue = false;  // true exactly when ref_count == 0
};

// Counters of the prefix cache at block level.
struct BlockPoolStats {
  int64_t lookups = 0;    // find_cached calls
  int64_t hits = 0;       // find_cached calls that found a block
  int64_t evictions = 0;  // cached blocks whose hash was dropped to reuse them
  int64_t allocated = 0;  // blocks handed out by allocate
};

// The pool of one model's KV blocks. Not thread-safe: the scheduler's thread owns it.
class BlockPool {
 public:
  // A pool of `num_blocks` blocks of `block_size` tokens; InvalidArgument unless both are positive and
  // their product fits the slot index range (int32).
  static Status create(int32_t num_blocks, int32_t block_size, std::unique_ptr<BlockPool>* out);

  // Number of blocks in the pool.
  int32_t num_blocks() const { return (int32_t)blocks_.size(); }
  // Tokens per block.
  int32_t block_size() const { return block_size_; }
  // Blocks with ref_count 0 (cached or not): what allocate can hand out.
  int32_t num_free() const { return num_free_; }
  // Blocks with ref_count > 0.
  int32_t num_used() const { return num_blocks() - num_free_; }
  // Blocks findable by hash (in use or free).
  int32_t num_cached() const { return (int32_t)cached_.size(); }
  // Fraction of blocks in use, 0..1.
  double usage() const { return (double)num_used() / (double)num_blocks(); }

  // Appends `n` blocks with ref_count 1 to *out, taken from the front of the free queue (evicting their
  // hashes). OutOfMemory, allocating nothing, when fewer than n are free; InvalidArgument when n < 0.
  Status allocate(int32_t n, std::vector<BlockId>* out);

  // The cached block holding exactly (parent, extra_key, tokens) under `hash`, or -1. Counts a lookup
  // (and a hit); does not change reference counts or the LRU order.
  BlockId find_cached(BlockHash hash, BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens);

  // Takes a reference on a cached or in-use block (ref_count++), removing it from the free queue when
  // its count was 0. InvalidArgument for an id out of range or a free block that is not cached.
  Status touch(BlockId id);

  // Drops one reference on each block, in order; a block reaching 0 keeps its hash (it stays cached) and is
  // appended to the back of the free queue, or, when it is not cached, put at the front (a sequence's
  // uncached blocks, freed tail first, end up at the front in table order). Pass a sequence's blocks tail
  // first. InvalidArgument,
  // changing nothing, for an id out of range or a block that is already free; Internal if a block is
  // listed more times than its references.
  Status free(std::span<const BlockId> ids);

  // Caches in-use block `id` under `hash`, remembering its parent, extra key and tokens (block_size of
  // them) for verification. Sets *cached (when non-null) to false, leaving the block uncached, when another
  // block already holds that hash. InvalidArgument for a bad id, a free block, a block already cached or a
  // wrong token count.
  Status cache_block(BlockId id, BlockHash hash, BlockHash parent, uint64_t extra_key,
                     std::span<const int32_t> tokens, bool* cached = nullptr);

  // Drops the hash of block `id` if it has one (its K/V is no longer trusted); the block keeps its
  // references, and moves to the front of the free queue when it is free. Ids out of range are ignored.
  void uncache(BlockId id);

  // Drops every hash (for example after the model's weights changed). Reference counts are unchanged.
  void clear_cache();

  // Bookkeeping of block `id` (for tests and diagnostics); id must be in range.
  const KvBlock& block(BlockId id) const { return blocks_[(size_t)id]; }
  // The free queue from front (evicted first) to back.
  std::vector<BlockId> free_queue() const;
  // Block-level cache counters.
  const BlockPoolStats& stats() const { return stats_; }
  // Checks every internal invariant (free-queue links and count, ref counts, map consistency); Internal
  // with a description of the first violation.
  Status check_invariants() const;

 private:
  BlockPool(int32_t num_blocks, int32_t block_size);
  // Unlinks block `id` from the free queue.
  void remove_free(BlockId id);
  // Links block `id` at the back of the free queue.
  void push_free_back(BlockId id);
  // Links block `id` at the front of the free queue (the next one allocated).
  void push_free_front(BlockId id);
  // Drops a block's hash and map entry (no-op when it has none).
  void drop_hash(KvBlock& b);

  int32_t block_size_;                             // tokens per block
  std::vector<KvBlock> blocks_;                    // every block, indexed by id
  BlockId free_front_ = -1;                        // next block to allocate (least recently used), -1: none
  BlockId free_back_ = -1;                         // most recently freed block, -1: none
  int32_t num_free_ = 0;                           // length of the free queue
  std::unordered_map<BlockHash, BlockId> cached_;  // hash -> the one block cached under it
  std::vector<BlockHash> parent_of_;               // per block: parent hash, valid when has_hash
  std::vector<uint64_t> extra_of_;                 // per block: extra key, valid when has_hash
  std::vector<int32_t> tokens_of_;                 // per block: block_size token ids, valid when has_hash
  BlockPoolStats stats_;                           // counters
};

}  // namespace pginfer
