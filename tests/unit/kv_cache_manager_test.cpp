// tests/unit/kv_cache_manager_test.cpp: block tables over the pool: growth and freeing, all-or-nothing
// allocation, prefix sharing with reference counts and hit rate, never the whole prompt, tail-first
// eviction, hash chaining across parents and models, opt-out, stale hits and discarding after a failed step.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <vector>

#include "engine/kv_cache_manager.h"

namespace pginfer {
namespace {

std::vector<int32_t> seq(int32_t n, int32_t start) {
  std::vector<int32_t> t((size_t)n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Fixture {
  explicit Fixture(int32_t blocks, int32_t bs = 4, uint64_t key = 42) {
    EXPECT_TRUE(BlockPool::create(blocks, bs, &pool).ok());
    kv = std::make_unique<KvCacheManager>(pool.get(), key);
  }
  // Registers and admits `id` with a prefix lookup, computing the whole rest of `tokens`.
  PrefixHit admit(RequestId id, const std::vector<int32_t>& tokens, bool caching = true, bool* ok = nullptr) {
    EXPECT_TRUE(kv->add_request(id, caching).ok());
    PrefixHit hit = kv->get_computed_blocks(id, tokens);
    bool allocated = false;
    EXPECT_TRUE(kv->allocate_slots(id, tokens, 0, (int32_t)tokens.size() - hit.num_tokens, hit, &allocated).ok());
    if (ok) *ok = allocated; else EXPECT_TRUE(allocated);
    return hit;
  }
  std::vector<BlockId> table(RequestId id) {
    auto t = kv->block_table(id);
    return {t.begin(), t.end()};
  }
  std::unique_ptr<BlockPool> pool;
  std::unique_ptr<KvCacheManager> kv;
};

TEST(KvCacheManager, TableGrowsByBlocksAndFreeReturnsThemAll) {
  Fixture f(16);
  auto toks = seq(10, 1);
  f.admit(1, toks);
  EXPECT_EQ(f.kv->block_table(1).size(), 3u);  // 10 tokens in blocks of 4
  EXPECT_EQ(f.pool->num_used(), 3);
  bool ok = false;
  toks.push_back(11);  // a decode: position 10 still fits in block 3
  ASSERT_TRUE(f.kv->allocate_slots(1, toks, 10, 1, PrefixHit(), &ok).ok());
  EXPECT_TRUE(ok);
  EXPECT_EQ(f.kv->block_table(1).size(), 3u);
  toks.push_back(12);
  toks.push_back(13);
  ASSERT_TRUE(f.kv->allocate_slots(1, toks, 11, 2, PrefixHit(), &ok).ok());  // positions 11, 12
  EXPECT_EQ(f.kv->block_table(1).size(), 4u);
  EXPECT_EQ(slot_of(f.kv->block_table(1), 12, 4), f.kv->block_table(1)[3] * 4 + 0);
  ASSERT_TRUE(f.kv->free(1).ok());
  EXPECT_EQ(f.pool->num_used(), 0);
  EXPECT_EQ(f.pool->num_free(), 16);
  EXPECT_FALSE(f.kv->has_request(1));
  EXPECT_EQ(f.kv->free(1).code(), StatusCode::InvalidArgument);
  EXPECT_TRUE(f.pool->check_invariants().ok());
}

TEST(KvCacheManager, AllocationIsAllOrNothing) {
  Fixture f(4);
  bool ok = true;
  f.admit(1, seq(12, 0), true, &ok);  // 3 blocks
  EXPECT_TRUE(ok);
  ASSERT_TRUE(f.kv->add_request(2, true).ok());
  auto t2 = seq(8, 500);
  ASSERT_TRUE(f.kv->allocate_slots(2, t2, 0, 8, PrefixHit(), &ok).ok());  // needs 2, 1 free
  EXPECT_FALSE(ok);
  EXPECT_TRUE(f.kv->block_table(2).empty());
  EXPECT_EQ(f.pool->num_free(), 1);
  EXPECT_EQ(f.kv->allocate_slots(2, t2, 0, 9, PrefixHit(), &ok).code(), StatusCode::InvalidArgument);  // > known
  EXPECT_EQ(f.kv->allocate_slots(3, t2, 0, 1, PrefixHit(), &ok).code(), StatusCode::InvalidArgument);  // unknown
  EXPECT_EQ(f.kv->add_request(1, true).code(), StatusCode::InvalidArgument);  // duplicate
}

TEST(KvCacheManager, TwoRequestsShareAPrefix) {
  Fixture f(16);
  const auto prefix = seq(8, 100);  // two full blocks
  const auto a = concat(prefix, seq(5, 1));
  const auto b = concat(prefix, seq(6, 50));
  PrefixHit ha = f.admit(1, a);
  EXPECT_EQ(ha.num_tokens, 0);
  EXPECT_EQ(f.pool->num_cached(), 3);  // a's three full blocks are published
  PrefixHit hb = f.admit(2, b);
  EXPECT_EQ(hb.num_tokens, 8);
  const auto ta = f.table(1), tb = f.table(2);
  EXPECT_EQ(ta[0], tb[0]);
  EXPECT_EQ(ta[1], tb[1]);
  EXPECT_NE(ta[2], tb[2]);
  EXPECT_EQ(f.pool->block(ta[0]).ref_count, 2);
  EXPECT_EQ(f.pool->block(ta[1]).ref_count, 2);
  EXPECT_EQ(f.pool->block(ta[2]).ref_count, 1);
  EXPECT_EQ(f.pool->num_used(), 4 + 2);  // a: 4 blocks, b: 2 shared + 2 own
  EXPECT_EQ(f.kv->stats().admissions, 2);
  EXPECT_EQ(f.kv->stats().prompt_tokens, 13 + 14);
  EXPECT_EQ(f.kv->stats().hit_tokens, 8);
  EXPECT_DOUBLE_EQ(f.kv->stats().hit_rate(), 8.0 / 27.0);
  ASSERT_TRUE(f.kv->free(1).ok());
  EXPECT_EQ(f.pool->block(ta[0]).ref_count, 1);  // still held by b
  ASSERT_TRUE(f.kv->free(2).ok());
  EXPECT_EQ(f.pool->num_used(), 0);
  EXPECT_TRUE(f.pool->check_invariants().ok());
}

TEST(KvCacheManager, NeverTheWholePrompt) {
  Fixture f(16);
  const auto a = seq(12, 7);  // exactly three full blocks
  f.admit(1, a);
  ASSERT_TRUE(f.kv->free(1).ok());
  PrefixHit h = f.admit(2, a);
  EXPECT_EQ(h.num_tokens, 8);  // the block holding the last token is recomputed
  EXPECT_EQ(f.kv->block_table(2).size(), 3u);
  PrefixHit h1 = f.admit(3, std::vector<int32_t>{7});
  EXPECT_EQ(h1.num_tokens, 0);
}

TEST(KvCacheManager, CachedBlocksOutliveTheirRequestAndEvictTailFirst) {
  Fixture f(7);
  const auto a = concat(seq(12, 100), std::vector<int32_t>{1});  // 3 full blocks + 1 token
  f.admit(1, a);
  const auto ta = f.table(1);
  ASSERT_TRUE(f.kv->free(1).ok());
  EXPECT_EQ(f.pool->num_cached(), 3);
  // Freed tail first: the last cached block of the sequence comes first in eviction order; the uncached
  // partial block goes to the front, to be reused before anything cached.
  const auto q = f.pool->free_queue();
  ASSERT_EQ(q.size(), 7u);
  EXPECT_EQ(q.front(), ta[3]);
  EXPECT_EQ(std::vector<BlockId>(q.end() - 3, q.end()), (std::vector<BlockId>{ta[2], ta[1], ta[0]}));
  // Taking 4 blocks uses a's uncached partial block and the 3 never-used ones: nothing cached is lost.
  ASSERT_TRUE(f.kv->add_request(9, true).ok());
  bool ok = false;
  ASSERT_TRUE(f.kv->allocate_slots(9, seq(16, 900), 0, 16, PrefixHit(), &ok).ok());
  ASSERT_TRUE(ok);
  EXPECT_EQ(f.pool->num_cached(), 3 + 4);
  EXPECT_EQ(f.pool->stats().evictions, 0);
  // One more block must evict: the tail of a's prefix (block 2) goes first, its head stays findable.
  ASSERT_TRUE(f.kv->add_request(10, false).ok());
  ASSERT_TRUE(f.kv->allocate_slots(10, seq(4, 5000), 0, 4, PrefixHit(), &ok).ok());
  ASSERT_TRUE(ok);
  EXPECT_EQ(f.pool->stats().evictions, 1);
  EXPECT_FALSE(f.pool->block(ta[2]).has_hash);
  EXPECT_TRUE(f.pool->block(ta[1]).has_hash);
  ASSERT_TRUE(f.kv->free(9).ok());
  ASSERT_TRUE(f.kv->free(10).ok());
  PrefixHit h = f.admit(2, a);
  EXPECT_EQ(h.num_tokens, 8);
  EXPECT_EQ(f.table(2)[0], ta[0]);
  EXPECT_EQ(f.table(2)[1], ta[1]);
  EXPECT_TRUE(f.pool->check_invariants().ok());
}

TEST(KvCacheManager, SameTokensUnderAnotherParentAreAnotherBlock) {
  Fixture f(16);
  const auto x = seq(4, 10), y = seq(4, 20), z = seq(4, 30);
  f.admit(1, concat(concat(x, y), std::vector<int32_t>{1}));  // publishes [x], [x y]
  PrefixHit h = f.admit(2, concat(concat(z, y), std::vector<int32_t>{1}));
  EXPECT_EQ(h.num_tokens, 0);  // y is cached, but after x, not after z
  PrefixHit h2 = f.admit(3, concat(concat(x, y), std::vector<int32_t>{2}));
  EXPECT_EQ(h2.num_tokens, 8);
}

TEST(KvCacheManager, ModelsNeverShareBlocks) {
  Fixture f(16);
  KvCacheManager other(f.pool.get(), 43);  // another model's key over the same pool
  const auto a = seq(9, 0);
  f.admit(1, a);
  ASSERT_TRUE(other.add_request(2, true).ok());
  EXPECT_EQ(other.get_computed_blocks(2, a).num_tokens, 0);
  ASSERT_TRUE(f.kv->add_request(3, true).ok());
  EXPECT_EQ(f.kv->get_computed_blocks(3, a).num_tokens, 8);
}

TEST(KvCacheManager, OptOutNeitherReadsNorPublishes) {
  Fixture f(16);
  const auto a = seq(9, 0);
  f.admit(1, a, /*caching=*/false);
  EXPECT_EQ(f.pool->num_cached(), 0);
  f.admit(2, a);  // publishes
  EXPECT_EQ(f.pool->num_cached(), 2);
  PrefixHit h = f.admit(3, a, /*caching=*/false);
  EXPECT_EQ(h.num_tokens, 0);
  EXPECT_EQ(f.kv->block_table(3).size(), 3u);
  EXPECT_EQ(f.kv->stats().hit_tokens, 0);
}

TEST(KvCacheManager, BlocksArePublishedAsSoonAsScheduled) {
  // Published at allocation, so a request admitted later in the same step shares them (the executor
  // writes every scheduled token's K/V before attention reads the cache).
  Fixture f(16);
  const auto a = seq(9, 0);
  ASSERT_TRUE(f.kv->add_request(1, true).ok());
  bool ok = false;
  ASSERT_TRUE(f.kv->allocate_slots(1, a, 0, 6, PrefixHit(), &ok).ok());  // a chunk: 1 full block
  EXPECT_EQ(f.pool->num_cached(), 1);
  ASSERT_TRUE(f.kv->allocate_slots(1, a, 6, 3, PrefixHit(), &ok).ok());
  EXPECT_EQ(f.pool->num_cached(), 2);
  ASSERT_TRUE(f.kv->add_request(2, true).ok());
  EXPECT_EQ(f.kv->get_computed_blocks(2, a).num_tokens, 8);
}

TEST(KvCacheManager, StaleHitIsRefused) {
  Fixture f(3);
  const auto a = seq(9, 0);
  f.admit(1, a);
  ASSERT_TRUE(f.kv->free(1).ok());
  ASSERT_TRUE(f.kv->add_request(2, true).ok());
  PrefixHit h = f.kv->get_computed_blocks(2, a);
  ASSERT_EQ(h.num_tokens, 8);
  std::vector<BlockId> grab;
  ASSERT_TRUE(f.pool->allocate(3, &grab).ok());  // evicts everything
  bool ok = true;
  EXPECT_EQ(f.kv->allocate_slots(2, a, 0, 1, h, &ok).code(), StatusCode::InvalidArgument);
  EXPECT_FALSE(ok);
}

TEST(KvCacheManager, RevivedCachedBlocksCountAgainstFreeSpace) {
  Fixture f(4);
  const auto a = seq(9, 0);
  f.admit(1, a);  // 3 blocks, 2 published
  ASSERT_TRUE(f.kv->free(1).ok());
  ASSERT_TRUE(f.kv->add_request(2, true).ok());
  PrefixHit h = f.kv->get_computed_blocks(2, a);
  EXPECT_EQ(f.kv->blocks_needed(2, 0, 1, h), 2 + 1);  // revive 2 free cached blocks, allocate 1
  bool ok = false;
  ASSERT_TRUE(f.kv->allocate_slots(2, a, 0, 1, h, &ok).ok());
  EXPECT_TRUE(ok);
  EXPECT_EQ(f.pool->num_free(), 1);
  EXPECT_TRUE(f.pool->check_invariants().ok());
}

TEST(KvCacheManager, DiscardUnpublishesUncomputedBlocks) {
  Fixture f(16);
  const auto a = seq(13, 0);
  f.admit(1, a);
  EXPECT_EQ(f.pool->num_cached(), 3);
  const auto ta = f.table(1);
  ASSERT_TRUE(f.kv->discard(1, 4).ok());  // only the first block's K/V was computed
  EXPECT_TRUE(f.pool->block(ta[0]).has_hash);
  EXPECT_FALSE(f.pool->block(ta[1]).has_hash);
  EXPECT_FALSE(f.pool->block(ta[2]).has_hash);
  EXPECT_FALSE(f.kv->has_request(1));
  EXPECT_EQ(f.pool->num_used(), 0);
  ASSERT_TRUE(f.kv->add_request(2, true).ok());
  EXPECT_EQ(f.kv->get_computed_blocks(2, a).num_tokens, 4);
}

}  // namespace
}  // namespace pginfer
