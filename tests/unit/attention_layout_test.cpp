// Tests of engine/attention_layout.h: the ints a GPU attention call uploads, read back through the kernels' own
// table_of and slot_of (kernels/common/attention_shape.h), as the CUDA kernels read them.
#include "engine/attention_layout.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/common/attention_shape.h"

namespace pginfer {
namespace {

// A pool of the given shape; the layout only reads its shape.
class ShapePool : public KvPool {
 public:
  ShapePool(int64_t n_blocks, int64_t block_size) : n_blocks_(n_blocks), block_size_(block_size) {}
  int64_t n_blocks() const override { return n_blocks_; }
  int64_t block_size() const override { return block_size_; }

 private:
  int64_t n_blocks_, block_size_;
};

// A contiguous cache of the given capacity.
class ShapeCache : public KvCache {
 public:
  explicit ShapeCache(int64_t capacity) : capacity_(capacity) {}
  int64_t capacity() const override { return capacity_; }

 private:
  int64_t capacity_;
};

// The KvSlots the backend hands the kernels, over the layout's ints on the host.
cuda::KvSlots slots_of(const AttentionLayout& a) {
  cuda::KvSlots s;
  s.block_shift = a.block_shift;
  if (a.pool != nullptr) s.blocks = a.ints.data() + a.tables_at;
  if (a.per_token_tables) s.table_start = a.ints.data() + a.n_tokens;
  return s;
}

// Sequences of a paged call: their views, and per chunk its tokens' positions.
struct PagedCall {
  explicit PagedCall(KvPool& pool) : pool(pool) {}
  // Adds a chunk of n tokens at positions from..from+n-1, whose sequence holds its blocks in `blocks`.
  void add(std::vector<int32_t> blocks, int32_t from, int64_t n) {
    views.push_back(std::make_unique<PagedKvCache>(pool));
    views.back()->blocks = std::move(blocks);
    chunks.push_back({views.back().get(), n});
    for (int64_t i = 0; i < n; ++i) pos.push_back(from + (int32_t)i);
  }
  KvPool& pool;
  std::vector<std::unique_ptr<PagedKvCache>> views;
  std::vector<AttentionChunk> chunks;
  std::vector<int32_t> pos;
};

// Checks that every key of every token is found at its sequence's slot, and that each table read lies in the
// layout's tables.
void expect_every_key_at_its_slot(const PagedCall& call, const AttentionLayout& a) {
  const cuda::KvSlots s = slots_of(a);
  const int64_t block_size = call.pool.block_size();
  int64_t t = 0;
  for (const AttentionChunk& c : call.chunks) {
    const PagedKvCache& seq = *c.kv->as_paged();
    for (int64_t i = 0; i < c.n_tokens; ++i, ++t) {
      ASSERT_EQ(a.ints[t], call.pos[t]) << "token " << t;
      const int32_t* table = cuda::table_of(s, t);
      for (int64_t j = 0; j <= call.pos[t]; ++j) {
        const int64_t entry = (table - a.ints.data()) + (j >> a.block_shift);
        ASSERT_GE(entry, a.tables_at);
        ASSERT_LT(entry, a.tiles_at) << "token " << t << " key " << j << ": read outside the tables";
        ASSERT_EQ(cuda::slot_of(table, s.block_shift, j), seq.blocks[j / block_size] * block_size + j % block_size)
            << "token " << t << " key " << j;
      }
    }
  }
}

// Checks that the tiles cover every token once, in runs of at most kTileQueries tokens of one chunk.
void expect_tiles_cover_the_chunks(const std::vector<AttentionChunk>& chunks, const AttentionLayout& a) {
  ASSERT_TRUE(a.tiled);
  ASSERT_EQ((int64_t)a.ints.size(), a.tiles_at + 2 * a.n_tiles);
  std::vector<int> chunk_of;
  for (size_t c = 0; c < chunks.size(); ++c) chunk_of.insert(chunk_of.end(), chunks[c].n_tokens, (int)c);
  std::vector<int> covered(a.n_tokens, 0);
  for (int64_t i = 0; i < a.n_tiles; ++i) {
    const int32_t first = a.ints[a.tiles_at + 2 * i], count = a.ints[a.tiles_at + 2 * i + 1];
    ASSERT_GE(count, 1);
    ASSERT_LE(count, cuda::kTileQueries);
    ASSERT_LE(first + count, a.n_tokens);
    for (int32_t t = first; t < first + count; ++t) {
      ++covered[t];
      EXPECT_EQ(chunk_of[t], chunk_of[first]) << "tile " << i << " spans two chunks";
    }
  }
  for (int64_t t = 0; t < a.n_tokens; ++t) EXPECT_EQ(covered[t], 1) << "token " << t;
}

TEST(AttentionLayout, AContiguousCacheUploadsItsPositionsOnly) {
  ShapeCache cache(100);
  const std::vector<int32_t> pos = {7, 8, 9, 10, 11};
  const AttentionChunk chunk{&cache, 5};
  AttentionLayout a;
  ASSERT_TRUE(build_attention_layout({&chunk, 1}, pos.data(), 64, &a).ok());
  EXPECT_EQ(a.cache, &cache);
  EXPECT_EQ(a.pool, nullptr);
  EXPECT_EQ(a.n_tokens, 5);
  EXPECT_EQ(a.bound, 256);
  EXPECT_FALSE(a.tiled);
  EXPECT_EQ(a.ints, pos);
  // Every key of a token is at its own position.
  const cuda::KvSlots s = slots_of(a);
  EXPECT_EQ(cuda::table_of(s, 3), nullptr);
  EXPECT_EQ(cuda::slot_of(cuda::table_of(s, 3), s.block_shift, 10), 10);
}

TEST(AttentionLayout, AContiguousCacheTooSmallFails) {
  ShapeCache cache(10);
  const std::vector<int32_t> pos = {9, 10};
  const AttentionChunk chunk{&cache, 2};
  AttentionLayout a;
  const Status st = build_attention_layout({&chunk, 1}, pos.data(), 64, &a);
  EXPECT_EQ(st.code(), StatusCode::Internal);
  EXPECT_NE(st.message().find("beyond the KV cache"), std::string::npos) << st.message();
}

TEST(AttentionLayout, OnePagedSequenceHasOneTablePaddedToTheBound) {
  ShapePool pool(64, 16);
  PagedCall call(pool);
  call.add({5, 9, 2}, 40, 1);  // decoding at position 40: block 2 of its table
  AttentionLayout a;
  ASSERT_TRUE(build_attention_layout(call.chunks, call.pos.data(), 128, &a).ok());
  EXPECT_EQ(a.pool, &pool);
  EXPECT_EQ(a.block_shift, 4);
  EXPECT_FALSE(a.per_token_tables);
  EXPECT_EQ(a.tables_at, 1);
  EXPECT_EQ(a.bound, 256);
  std::vector<int32_t> want = {40, 5, 9, 2};
  want.resize(1 + 256 / 16, 0);
  EXPECT_EQ(a.ints, want);
  expect_every_key_at_its_slot(call, a);
}

TEST(AttentionLayout, EveryKeyOfAServingStepIsFoundAtItsSequencesSlot) {
  for (const int64_t block_size : {16, 256, 512}) {
    SCOPED_TRACE("block size " + std::to_string(block_size));
    ShapePool pool(4000, block_size);
    std::vector<int32_t> free_blocks(4000);
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(7));
    size_t next = 0;
    auto take_blocks = [&](int64_t positions) {
      std::vector<int32_t> table;
      for (int64_t p = 0; p < positions; p += block_size) table.push_back(free_blocks[next++]);
      return table;
    };
    PagedCall call(pool);
    call.add(take_blocks(300), 299, 1);     // decoding
    call.add(take_blocks(150), 0, 150);     // a prompt
    call.add(take_blocks(1000), 900, 100);  // a prompt's later chunk
    call.add(take_blocks(3), 2, 1);         // decoding, early
    for (const int64_t head_dim : {64, 96}) {  // tiled, and the kernel of one block per query
      AttentionLayout a;
      ASSERT_TRUE(build_attention_layout(call.chunks, call.pos.data(), head_dim, &a).ok());
      EXPECT_TRUE(a.per_token_tables);
      EXPECT_EQ(a.n_tokens, 252);
      EXPECT_EQ(a.bound, cuda::attention_key_bound(1000, block_size));
      EXPECT_EQ(a.tables_at, 2 * 252);
      EXPECT_EQ(a.tiles_at, a.tables_at + 4 * (a.bound / block_size)) << "each table padded to the bound";
      expect_every_key_at_its_slot(call, a);
      if (head_dim == 64) {
        EXPECT_EQ(a.n_tiles, 1 + 3 + 2 + 1);
        expect_tiles_cover_the_chunks(call.chunks, a);
      } else {
        EXPECT_FALSE(a.tiled);
        EXPECT_EQ((int64_t)a.ints.size(), a.tiles_at);
      }
    }
  }
}

TEST(AttentionLayout, ItsSizeDependsOnTheKeyBoundOnly) {
  // A recorded pass uploads the same sizes while its sequences grow within the bound.
  ShapePool pool(256, 16);
  auto size_at = [&](int32_t p1, int32_t p2, int64_t* bound) {
    PagedCall call(pool);
    std::vector<int32_t> t1(p1 / 16 + 1, 1), t2(p2 / 16 + 1, 2);
    call.add(t1, p1, 1);
    call.add(t2, p2, 1);
    AttentionLayout a;
    EXPECT_TRUE(build_attention_layout(call.chunks, call.pos.data(), 64, &a).ok());
    *bound = a.bound;
    return a.ints.size();
  };
  int64_t b1 = 0, b2 = 0, b3 = 0;
  const size_t n1 = size_at(260, 3, &b1), n2 = size_at(511, 100, &b2), n3 = size_at(512, 100, &b3);
  EXPECT_EQ(b1, 512);
  EXPECT_EQ(b2, 512);
  EXPECT_EQ(n1, n2);
  EXPECT_EQ(b3, 768);
  EXPECT_EQ(n3, n1 + 2 * (256 / 16));
}

TEST(AttentionLayout, EmptyChunksAreSkipped) {
  ShapePool pool(16, 16);
  PagedCall call(pool);
  call.add({3}, 0, 2);
  call.add({4}, 0, 0);
  call.add({5}, 7, 1);
  AttentionLayout a;
  ASSERT_TRUE(build_attention_layout(call.chunks, call.pos.data(), 64, &a).ok());
  EXPECT_EQ(a.chunk_tokens, (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(a.per_token_tables);
  EXPECT_EQ(a.tiles_at, a.tables_at + 2 * 16);
  const std::vector<AttentionChunk> nonempty = {call.chunks[0], call.chunks[2]};
  PagedCall same(pool);
  same.chunks = nonempty;
  same.pos = call.pos;
  expect_every_key_at_its_slot(same, a);
}

TEST(AttentionLayout, BadCallsFail) {
  ShapePool pool(8, 16), other(8, 16);
  ShapeCache cache(64);
  struct Case {
    const char* what;
    std::function<void(PagedCall*)> make;
    int64_t head_dim;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"negative position", [](PagedCall* c) { c->add({1}, -1, 1); }, 64, "negative position"},
      {"position past the table", [](PagedCall* c) { c->add({1, 2}, 32, 1); }, 64, "beyond the block table"},
      {"entry past the pool", [](PagedCall* c) { c->add({1, 8}, 20, 1); }, 64, "outside the pool"},
      {"negative entry", [](PagedCall* c) { c->add({-1}, 3, 1); }, 64, "outside the pool"},
      {"heads too large", [](PagedCall* c) { c->add({1}, 3, 1); }, 512, "head dimension"},
      {"two pools",
       [&other](PagedCall* c) {
         c->add({1}, 3, 1);
         c->views.push_back(std::make_unique<PagedKvCache>(other));
         c->views.back()->blocks = {1};
         c->chunks.push_back({c->views.back().get(), 1});
         c->pos.push_back(2);
       },
       64, "not views of one pool"},
      {"a pool and a contiguous cache",
       [&cache](PagedCall* c) {
         c->add({1}, 3, 1);
         c->chunks.push_back({&cache, 1});
         c->pos.push_back(2);
       },
       64, "not views of one pool"},
      {"two contiguous caches",
       [&cache](PagedCall* c) {
         c->chunks.push_back({&cache, 1});
         c->chunks.push_back({&cache, 1});
         c->pos = {1, 2};
       },
       64, "not views of one pool"},
  };
  for (const Case& c : cases) {
    PagedCall call(pool);
    c.make(&call);
    AttentionLayout a;
    const Status st = build_attention_layout(call.chunks, call.pos.data(), c.head_dim, &a);
    EXPECT_EQ(st.code(), StatusCode::Internal) << c.what;
    EXPECT_NE(st.message().find(c.message), std::string::npos) << c.what << ": " << st.message();
  }
}

TEST(AttentionLayout, IsReusedOnlyForTheSameChunksAndPositions) {
  ShapePool pool(16, 16);
  PagedCall call(pool);
  call.add({3}, 0, 2);
  call.add({5}, 7, 1);
  AttentionLayout a;
  ASSERT_TRUE(build_attention_layout(call.chunks, call.pos.data(), 64, &a).ok());
  EXPECT_TRUE(a.built_for(call.chunks, call.pos.data()));
  const std::vector<int32_t> copy = call.pos;
  EXPECT_FALSE(a.built_for(call.chunks, copy.data())) << "another positions array";
  std::vector<AttentionChunk> fewer = call.chunks;
  fewer[1].n_tokens = 0;
  EXPECT_FALSE(a.built_for(fewer, call.pos.data()));
  EXPECT_FALSE(a.built_for(std::span<const AttentionChunk>(call.chunks).first(1), call.pos.data()));
}

TEST(AttentionShape, TheKeyBoundRoundsToBlocksAndTo256) {
  EXPECT_EQ(cuda::attention_key_bound(1, 16), 256);
  EXPECT_EQ(cuda::attention_key_bound(256, 16), 256);
  EXPECT_EQ(cuda::attention_key_bound(257, 16), 512);
  EXPECT_EQ(cuda::attention_key_bound(1, 1024), 1024);
  EXPECT_EQ(cuda::attention_key_bound(1025, 1024), 2048);
}

}  // namespace
}  // namespace pginfer
