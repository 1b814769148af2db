// engine/block_pool.cpp: the KV block pool: allocation from the free queue (uncached blocks first, then
// cached ones least recently used first), reference counts, the prefix-cache map with verified lookups, and
// invariant checks.
#include "engine/block_pool.h"

#include <algorithm>
#include <string>

namespace pginfer {

namespace {

// Splitmix64's finalizer: a bijective mix with full avalanche.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Folds one 64-bit item into the running hash (order-sensitive).
inline uint64_t combine(uint64_t h, uint64_t v) {
  return mix64(h ^ mix64(v + 0x9e3779b97f4a7c15ull)) + 0x632be59bd9b4e019ull;
}

}  // namespace

BlockHash hash_block(BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) {
  uint64_t h = combine(0xcbf29ce484222325ull, parent);
  h = combine(h, extra_key);
  h = combine(h, (uint64_t)tokens.size());
  // Two tokens per item: fewer mixing rounds, still order-sensitive.
  size_t i = 0;
  for (; i + 1 < tokens.size(); i += 2)
    h = combine(h, ((uint64_t)(uint32_t)tokens[i] << 32) | (uint64_t)(uint32_t)tokens[i + 1]);
  if (i < tokens.size()) h = combine(h, 0xffffffff00000000ull | (uint64_t)(uint32_t)tokens[i]);
  return mix64(h);
}

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size)
    : block_size_(block_size),
      blocks_((size_t)num_blocks),
      parent_of_((size_t)num_blocks, 0),
      extra_of_((size_t)num_blocks, 0),
      tokens_of_((size_t)num_blocks * (size_t)block_size, 0) {
  for (int32_t i = 0; i < num_blocks; ++i) {
    blocks_[(size_t)i].id = i;
    push_free_back(i);
  }
  cached_.reserve((size_t)num_blocks);
}

Status BlockPool::create(int32_t num_blocks, int32_t block_size, std::unique_ptr<BlockPool>* out) {
  if (num_blocks <= 0)
    return invalid_argument("kv block pool needs at least one block, got " + std::to_string(num_blocks));
  if (block_size <= 0)
    return invalid_argument("kv block size must be positive, got " + std::to_string(block_size));
  if ((int64_t)num_blocks * (int64_t)block_size > INT32_MAX)
    return invalid_argument("kv block pool of " + std::to_string(num_blocks) + " blocks of " +
                            std::to_string(block_size) + " tokens exceeds the slot range");
  out->reset(new BlockPool(num_blocks, block_size));
  return Status();
}

void BlockPool::remove_free(BlockId id) {
  KvBlock& b = blocks_[(size_t)id];
  if (b.prev_free >= 0) blocks_[(size_t)b.prev_free].next_free = b.next_free; else free_front_ = b.next_free;
  if (b.next_free >= 0) blocks_[(size_t)b.next_free].prev_free = b.prev_free; else free_back_ = b.prev_free;
  b.prev_free = b.next_free = -1;
  b.in_free_queue = false;
  --num_free_;
}

void BlockPool::push_free_back(BlockId id) {
  KvBlock& b = blocks_[(size_t)id];
  b.prev_free = free_back_;
  b.next_free = -1;
  if (free_back_ >= 0) blocks_[(size_t)free_back_].next_free = id; else free_front_ = id;
  free_back_ = id;
  b.in_free_queue = true;
  ++num_free_;
}

void BlockPool::push_free_front(BlockId id) {
  KvBlock& b = blocks_[(size_t)id];
  b.prev_free = -1;
  b.next_free = free_front_;
  if (free_front_ >= 0) blocks_[(size_t)free_front_].prev_free = id; else free_back_ = id;
  free_front_ = id;
  b.in_free_queue = true;
  ++num_free_;
}

void BlockPool::drop_hash(KvBlock& b) {
  if (!b.has_hash) return;
  auto it = cached_.find(b.hash);
  if (it != cached_.end() && it->second == b.id) cached_.erase(it);
  b.has_hash = false;
  b.hash = 0;
}

Status BlockPool::allocate(int32_t n, std::vector<BlockId>* out) {
  if (n < 0) return invalid_argument("cannot allocate a negative number of kv blocks (" + std::to_string(n) + ")");
  if (n > num_free_)
    return out_of_memory("kv block pool has " + std::to_string(num_free_) + " free blocks, " + std::to_string(n) +
                         " needed");
  out->reserve(out->size() + (size_t)n);
  for (int32_t i = 0; i < n; ++i) {
    BlockId id = free_front_;
    remove_free(id);
    KvBlock& b = blocks_[(size_t)id];
    if (b.has_hash) {
      drop_hash(b);
      ++stats_.evictions;
    }
    b.ref_count = 1;
    out->push_back(id);
  }
  stats_.allocated += n;
  return Status();
}

BlockId BlockPool::find_cached(BlockHash hash, BlockHash parent, uint64_t extra_key,
                               std::span<const int32_t> tokens) {
  ++stats_.lookups;
  auto it = cached_.find(hash);
  if (it == cached_.end()) return -1;
  BlockId id = it->second;
  if (parent_of_[(size_t)id] != parent || extra_of_[(size_t)id] != extra_key || tokens.size() != (size_t)block_size_)
    return -1;
  const int32_t* stored = &tokens_of_[(size_t)id * (size_t)block_size_];
  if (!std::equal(tokens.begin(), tokens.end(), stored)) return -1;
  ++stats_.hits;
  return id;
}

Status BlockPool::touch(BlockId id) {
  if (id < 0 || id >= num_blocks()) return invalid_argument("kv block id " + std::to_string(id) + " out of range");
  KvBlock& b = blocks_[(size_t)id];
  if (b.ref_count == 0) {
    if (!b.has_hash) return invalid_argument("kv block " + std::to_string(id) + " is free and not cached");
    remove_free(id);
  }
  ++b.ref_count;
  return Status();
}

Status BlockPool::free(std::span<const BlockId> ids) {
  for (BlockId id : ids) {
    if (id < 0 || id >= num_blocks()) return invalid_argument("kv block id " + std::to_string(id) + " out of range");
    if (blocks_[(size_t)id].ref_count <= 0)
      return invalid_argument("kv block " + std::to_string(id) + " is already free");
  }
  for (BlockId id : ids) {
    KvBlock& b = blocks_[(size_t)id];
    if (b.ref_count <= 0) return internal_error("kv block " + std::to_string(id) + " freed more times than referenced");
    if (--b.ref_count > 0) continue;
    if (b.has_hash) push_free_back(id); else push_free_front(id);
  }
  return Status();
}

Status BlockPool::cache_block(BlockId id, BlockHash hash, BlockHash parent, uint64_t extra_key,
                              std::span<const int32_t> tokens, bool* cached) {
  if (cached) *cached = false;
  if (id < 0 || id >= num_blocks()) return invalid_argument("kv block id " + std::to_string(id) + " out of range");
  KvBlock& b = blocks_[(size_t)id];
  if (b.ref_count <= 0) return invalid_argument("kv block " + std::to_string(id) + " is free and cannot be cached");
  if (b.has_hash) return invalid_argument("kv block " + std::to_string(id) + " is already cached");
  if (tokens.size() != (size_t)block_size_)
    return invalid_argument("a cached kv block needs " + std::to_string(block_size_) + " tokens, got " +
                            std::to_string(tokens.size()));
  if (cached_.count(hash)) return Status();  // another block holds this content: keep the first
  cached_.emplace(hash, id);
  b.has_hash = true;
  b.hash = hash;
  parent_of_[(size_t)id] = parent;
  extra_of_[(size_t)id] = extra_key;
  std::copy(tokens.begin(), tokens.end(), tokens_of_.begin() + (ptrdiff_t)id * block_size_);
  if (cached) *cached = true;
  return Status();
}

void BlockPool::uncache(BlockId id) {
  if (id < 0 || id >= num_blocks()) return;
  KvBlock& b = blocks_[(size_t)id];
  if (!b.has_hash) return;
  drop_hash(b);
  if (b.in_free_queue) {  // nothing worth keeping any more: reused first
    remove_free(id);
    push_free_front(id);
  }
}

void BlockPool::clear_cache() {
  for (KvBlock& b : blocks_) {
    b.has_hash = false;
    b.hash = 0;
  }
  cached_.clear();
}

std::vector<BlockId> BlockPool::free_queue() const {
  std::vector<BlockId> q;
  q.reserve((size_t)num_free_);
  for (BlockId id = free_front_; id >= 0; id = blocks_[(size_t)id].next_free) q.push_back(id);
  return q;
}

Status BlockPool::check_invariants() const {
  // Walk the free queue: links consistent, every member free, uncached blocks ahead of cached ones, count
  // matches.
  int32_t walked = 0;
  BlockId prev = -1;
  bool seen_cached = false;
  for (BlockId id = free_front_; id >= 0; id = blocks_[(size_t)id].next_free) {
    if (id >= num_blocks()) return internal_error("free queue holds out-of-range id " + std::to_string(id));
    const KvBlock& b = blocks_[(size_t)id];
    if (b.prev_free != prev) return internal_error("free queue back link broken at block " + std::to_string(id));
    if (!b.in_free_queue || b.ref_count != 0)
      return internal_error("free queue holds block " + std::to_string(id) + " with ref_count " +
                            std::to_string(b.ref_count));
    if (seen_cached && !b.has_hash)
      return internal_error("free queue holds uncached block " + std::to_string(id) + " behind a cached one");
    seen_cached = seen_cached || b.has_hash;
    prev = id;
    if (++walked > num_blocks()) return internal_error("free queue has a cycle");
  }
  if (prev != free_back_) return internal_error("free queue back pointer is wrong");
  if (walked != num_free_)
    return internal_error("free queue length " + std::to_string(walked) + " != count " + std::to_string(num_free_));
  int32_t hashed = 0;
  for (const KvBlock& b : blocks_) {
    if (b.ref_count < 0) return internal_error("kv block " + std::to_string(b.id) + " has a negative ref_count");
    if ((b.ref_count == 0) != b.in_free_queue)
      return internal_error("kv block " + std::to_string(b.id) + " free-queue membership disagrees with its ref_count");
    if (b.has_hash) {
      ++hashed;
      auto it = cached_.find(b.hash);
      if (it == cached_.end() || it->second != b.id)
        return internal_error("cached kv block " + std::to_string(b.id) + " is missing from the hash map");
    }
  }
  if (hashed != (int32_t)cached_.size()) return internal_error("hash map holds blocks that are not marked cached");
  return Status();
}

}  // namespace pginfer
