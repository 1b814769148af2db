// tests/unit/block_pool_test.cpp: the KV block pool: counts, free-queue order (uncached first, then LRU),
// cached blocks that survive free and are evicted only for room, touch, verified lookups, hash chaining, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "engine/block_pool.h"

namespace pginfer {
namespace {

std::unique_ptr<BlockPool> make_pool(int32_t n, int32_t bs) {
  std::unique_ptr<BlockPool> p;
  EXPECT_TRUE(BlockPool::create(n, bs, &p).ok());
  return p;
}

std::vector<int32_t> iota_tokens(int32_t n, int32_t start) {
  std::vector<int32_t> t((size_t)n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

TEST(BlockPool, CreateRejectsBadSizes) {
  std::unique_ptr<BlockPool> p;
  EXPECT_EQ(BlockPool::create(0, 16, &p).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(BlockPool::create(4, 0, &p).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(BlockPool::create(1 << 30, 16, &p).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(p, nullptr);
}

TEST(BlockPool, AllocateAndFreeCounts) {
  auto p = make_pool(8, 4);
  EXPECT_EQ(p->num_free(), 8);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(3, &a).ok());
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(p->num_free(), 5);
  EXPECT_EQ(p->num_used(), 3);
  for (BlockId b : a) EXPECT_EQ(p->block(b).ref_count, 1);

  std::vector<BlockId> b;
  EXPECT_EQ(p->allocate(6, &b).code(), StatusCode::OutOfMemory);  // all or nothing
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(p->num_free(), 5);
  EXPECT_EQ(p->allocate(-1, &b).code(), StatusCode::InvalidArgument);

  ASSERT_TRUE(p->free(a).ok());
  EXPECT_EQ(p->num_free(), 8);
  EXPECT_EQ(p->num_used(), 0);
  EXPECT_EQ(p->free(a).code(), StatusCode::InvalidArgument);  // double free changes nothing
  const BlockId bad[] = {99};
  EXPECT_EQ(p->free(bad).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(p->num_free(), 8);
  EXPECT_TRUE(p->check_invariants().ok());
}

TEST(BlockPool, FreeQueueIsLruWithCachedBlocksAtTheBackAndUncachedAtTheFront) {
  auto p = make_pool(6, 4);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(3, &a).ok());
  EXPECT_EQ(a, (std::vector<BlockId>{0, 1, 2}));  // taken from the front
  // Blocks 0 and 1 hold full blocks of a prefix; block 2 holds a partial tail and stays uncached.
  for (int32_t i = 0; i < 2; ++i) {
    const auto t = iota_tokens(4, 10 * i);
    ASSERT_TRUE(p->cache_block(a[(size_t)i], hash_block(kRootBlockHash, 0, t), kRootBlockHash, 0, t).ok());
  }
  // A request frees its sequence tail first: the tail of the prefix will be evicted before its head, and the
  // uncached block is reused before anything cached.
  const std::vector<BlockId> reversed(a.rbegin(), a.rend());
  ASSERT_TRUE(p->free(reversed).ok());
  EXPECT_EQ(p->free_queue(), (std::vector<BlockId>{2, 3, 4, 5, 1, 0}));
  std::vector<BlockId> b;
  ASSERT_TRUE(p->allocate(5, &b).ok());
  EXPECT_EQ(b, (std::vector<BlockId>{2, 3, 4, 5, 1}));
  EXPECT_EQ(p->stats().evictions, 1);
  // Uncached blocks freed tail first come back in table order, ready to be reused as they were.
  const std::vector<BlockId> tail_first = {5, 4, 3};
  ASSERT_TRUE(p->free(tail_first).ok());
  EXPECT_EQ(p->free_queue(), (std::vector<BlockId>{3, 4, 5, 0}));
  EXPECT_TRUE(p->check_invariants().ok());
}

// The bug this guards against: a cached block freed before an uncached one was evicted first, although the
// uncached block held nothing worth keeping.
TEST(BlockPool, CachedBlockOutlivesUncachedBlocksFreedAfterIt) {
  auto p = make_pool(2, 4);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(1, &a).ok());
  const auto toks = iota_tokens(4, 100);
  const BlockHash h = hash_block(kRootBlockHash, 0, toks);
  ASSERT_TRUE(p->cache_block(a[0], h, kRootBlockHash, 0, toks).ok());
  ASSERT_TRUE(p->free(a).ok());
  for (int round = 0; round < 3; ++round) {  // a request that opted out of the cache, again and again
    std::vector<BlockId> b;
    ASSERT_TRUE(p->allocate(1, &b).ok());
    EXPECT_NE(b[0], a[0]);
    ASSERT_TRUE(p->free(b).ok());
  }
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 0, toks), a[0]);
  EXPECT_EQ(p->stats().evictions, 0);
  EXPECT_TRUE(p->check_invariants().ok());
}

TEST(BlockPool, CachedBlockSurvivesFreeAndIsEvictedOnlyForRoom) {
  auto p = make_pool(4, 4);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(1, &a).ok());
  const auto toks = iota_tokens(4, 100);
  const BlockHash h = hash_block(kRootBlockHash, 7, toks);
  bool cached = false;
  ASSERT_TRUE(p->cache_block(a[0], h, kRootBlockHash, 7, toks, &cached).ok());
  EXPECT_TRUE(cached);
  EXPECT_EQ(p->num_cached(), 1);
  ASSERT_TRUE(p->free(a).ok());
  EXPECT_EQ(p->num_free(), 4);    // free, but still cached
  EXPECT_EQ(p->num_cached(), 1);
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 7, toks), a[0]);

  // The three never-used blocks are ahead of it in the queue: allocating them keeps it cached.
  std::vector<BlockId> b;
  ASSERT_TRUE(p->allocate(3, &b).ok());
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 7, toks), a[0]);
  EXPECT_EQ(p->stats().evictions, 0);
  // Only when the pool needs that block too is it evicted.
  std::vector<BlockId> c;
  ASSERT_TRUE(p->allocate(1, &c).ok());
  EXPECT_EQ(c[0], a[0]);
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 7, toks), -1);
  EXPECT_EQ(p->num_cached(), 0);
  EXPECT_EQ(p->stats().evictions, 1);
  EXPECT_EQ(p->stats().lookups, 3);
  EXPECT_EQ(p->stats().hits, 2);
  EXPECT_TRUE(p->check_invariants().ok());
}

TEST(BlockPool, TouchRevivesAFreeCachedBlock) {
  auto p = make_pool(4, 2);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(1, &a).ok());
  const std::vector<int32_t> toks = {5, 6};
  const BlockHash h = hash_block(kRootBlockHash, 0, toks);
  ASSERT_TRUE(p->cache_block(a[0], h, kRootBlockHash, 0, toks).ok());
  ASSERT_TRUE(p->free(a).ok());
  EXPECT_EQ(p->num_free(), 4);
  ASSERT_TRUE(p->touch(a[0]).ok());  // ref 0 -> 1: leaves the free queue
  EXPECT_EQ(p->block(a[0]).ref_count, 1);
  EXPECT_EQ(p->num_free(), 3);
  ASSERT_TRUE(p->touch(a[0]).ok());  // shared by a second holder
  EXPECT_EQ(p->block(a[0]).ref_count, 2);
  ASSERT_TRUE(p->free(a).ok());
  EXPECT_EQ(p->num_free(), 3);
  ASSERT_TRUE(p->free(a).ok());
  EXPECT_EQ(p->num_free(), 4);
  EXPECT_EQ(p->free_queue().back(), a[0]);  // most recently used: evicted last
  EXPECT_TRUE(p->check_invariants().ok());
}

TEST(BlockPool, TouchRejectsFreeUncachedAndOutOfRange) {
  auto p = make_pool(2, 2);
  EXPECT_EQ(p->touch(0).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(p->touch(-1).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(p->touch(2).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(p->num_free(), 2);
}

TEST(BlockPool, HashChaining) {
  const std::vector<int32_t> t = {1, 2, 3, 4};
  const BlockHash root = hash_block(kRootBlockHash, 9, t);
  EXPECT_EQ(root, hash_block(kRootBlockHash, 9, t));  // deterministic
  EXPECT_NE(root, hash_block(root, 9, t));             // same tokens, different parent
  EXPECT_NE(root, hash_block(kRootBlockHash, 10, t));  // different model
  EXPECT_NE(root, hash_block(kRootBlockHash, 9, std::vector<int32_t>{2, 1, 3, 4}));  // order matters
  EXPECT_NE(root, hash_block(kRootBlockHash, 9, std::vector<int32_t>{1, 2, 3}));     // length matters
  // No collisions among many similar blocks.
  std::vector<BlockHash> seen;
  for (int32_t a = 0; a < 200; ++a)
    for (int32_t b = 0; b < 200; ++b) seen.push_back(hash_block(kRootBlockHash, 0, std::vector<int32_t>{a, b}));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
}

TEST(BlockPool, LookupVerifiesContentBehindTheHash) {
  auto p = make_pool(4, 2);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(1, &a).ok());
  const std::vector<int32_t> toks = {5, 6};
  const BlockHash h = hash_block(kRootBlockHash, 3, toks);
  ASSERT_TRUE(p->cache_block(a[0], h, kRootBlockHash, 3, toks).ok());
  // A colliding hash with other content, parent or extra key is a miss, never a wrong block.
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 3, std::vector<int32_t>{5, 7}), -1);
  EXPECT_EQ(p->find_cached(h, 12345, 3, toks), -1);
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 4, toks), -1);
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 3, toks), a[0]);
}

TEST(BlockPool, DuplicateContentKeepsTheFirstBlock) {
  auto p = make_pool(4, 2);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(2, &a).ok());
  const std::vector<int32_t> toks = {8, 9};
  const BlockHash h = hash_block(kRootBlockHash, 0, toks);
  bool cached = false;
  ASSERT_TRUE(p->cache_block(a[0], h, kRootBlockHash, 0, toks, &cached).ok());
  EXPECT_TRUE(cached);
  ASSERT_TRUE(p->cache_block(a[1], h, kRootBlockHash, 0, toks, &cached).ok());
  EXPECT_FALSE(cached);
  EXPECT_FALSE(p->block(a[1]).has_hash);
  EXPECT_EQ(p->find_cached(h, kRootBlockHash, 0, toks), a[0]);
  EXPECT_TRUE(p->check_invariants().ok());
}

TEST(BlockPool, CacheBlockRejectsBadInput) {
  auto p = make_pool(4, 2);
  const std::vector<int32_t> toks = {1, 2};
  const BlockHash h = hash_block(kRootBlockHash, 0, toks);
  EXPECT_EQ(p->cache_block(0, h, kRootBlockHash, 0, toks).code(), StatusCode::InvalidArgument);  // free
  EXPECT_EQ(p->cache_block(9, h, kRootBlockHash, 0, toks).code(), StatusCode::InvalidArgument);  // range
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(1, &a).ok());
  EXPECT_EQ(p->cache_block(a[0], h, kRootBlockHash, 0, std::vector<int32_t>{1}).code(), StatusCode::InvalidArgument);
  ASSERT_TRUE(p->cache_block(a[0], h, kRootBlockHash, 0, toks).ok());
  EXPECT_EQ(p->cache_block(a[0], h + 1, kRootBlockHash, 0, toks).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(p->num_cached(), 1);
}

TEST(BlockPool, UncacheAndClearCache) {
  auto p = make_pool(4, 1);
  std::vector<BlockId> a;
  ASSERT_TRUE(p->allocate(3, &a).ok());
  for (int32_t i = 0; i < 3; ++i) {
    const std::vector<int32_t> t = {i};
    ASSERT_TRUE(p->cache_block(a[(size_t)i], hash_block(kRootBlockHash, 0, t), kRootBlockHash, 0, t).ok());
  }
  EXPECT_EQ(p->num_cached(), 3);
  p->uncache(a[1]);
  p->uncache(77);  // ignored
  EXPECT_EQ(p->num_cached(), 2);
  EXPECT_EQ(p->find_cached(hash_block(kRootBlockHash, 0, std::vector<int32_t>{1}), kRootBlockHash, 0,
                           std::vector<int32_t>{1}),
            -1);
  p->clear_cache();
  EXPECT_EQ(p->num_cached(), 0);
  EXPECT_EQ(p->num_used(), 3);  // references untouched
  EXPECT_TRUE(p->check_invariants().ok());
  // A free cached block that is uncached moves to the front: it is reused first.
  const std::vector<int32_t> t = {9};
  ASSERT_TRUE(p->cache_block(a[0], hash_block(kRootBlockHash, 0, t), kRootBlockHash, 0, t).ok());
  const BlockId first[] = {a[0]};
  ASSERT_TRUE(p->free(first).ok());
  EXPECT_EQ(p->free_queue(), (std::vector<BlockId>{3, a[0]}));
  p->uncache(a[0]);
  EXPECT_EQ(p->free_queue(), (std::vector<BlockId>{a[0], 3}));
  EXPECT_TRUE(p->check_invariants().ok());
}

}  // namespace
}  // namespace pginfer
