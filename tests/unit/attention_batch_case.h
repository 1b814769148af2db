// tests/unit/attention_batch_case.h: one serving step's attention over a paged pool, run on any backend either
// chunk by chunk (Backend::attention) or in one Backend::attention_batch call, so that tests can compare the two
// (forward_test on the CPU, cuda_ops_test on the GPU). The step has four sequences with shuffled block tables:
// two decoding after a history of their own (one long enough for the GPU to split its keys into ranges), a new
// prompt, and a prompt sharing that prompt's first block, which the earlier chunk writes in the same call.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "tests/unit/test_data.h"

namespace pginfer::testing {

// Outputs (host floats) of the step's tokens, every chunk's rows in chunk order, computed on a fresh pool of
// `backend` with the histories stored first; per chunk or in one attention_batch call. The prompt has
// `prompt_tokens` tokens (at least 16).
inline std::vector<float> run_attention_batch_case(Backend& backend, const AttentionParams& ap, bool batched,
                                                   int64_t prompt_tokens = 20) {
  const int64_t n_layer = 2, layer = 1, block_size = 16;
  const int64_t prompt_blocks = (prompt_tokens + block_size - 1) / block_size, n_blocks = 22 + prompt_blocks;
  const int64_t q_dim = ap.n_head * ap.head_dim, kv_dim = ap.n_head_kv * ap.head_dim;
  std::unique_ptr<KvPool> pool;
  const Status st = backend.create_kv_pool(n_layer, n_blocks, block_size, kv_dim, &pool);
  EXPECT_TRUE(st.ok()) << st.message();
  if (!st.ok()) return {};
  std::vector<int32_t> ids(n_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(11));
  auto take = [&](size_t from, size_t n) { return std::vector<int32_t>(ids.begin() + from, ids.begin() + from + n); };
  PagedKvCache decode_a(*pool), prompt_b(*pool), shared_c(*pool), decode_d(*pool);
  decode_a.blocks = take(0, 3);                  // 40 positions of history, then one token at 40
  prompt_b.blocks = take(3, prompt_blocks);      // a prompt at 0..prompt_tokens - 1
  shared_c.blocks = take(3 + prompt_blocks, 1);  // B's first block (positions 0-15, written by B in the step), then
  shared_c.blocks.insert(shared_c.blocks.begin(), prompt_b.blocks[0]);  // its own
  decode_d.blocks = take(4 + prompt_blocks, 9);  // 130 positions of history, then one token at 130

  // Rows n_tokens of q, k, v (seeded) for the backend, and room for the output.
  struct Inputs {
    std::unique_ptr<ActivationBuffer> q, k, v, out;
  };
  auto inputs = [&](int64_t n, uint64_t seed) {
    Inputs in;
    std::unique_ptr<ActivationBuffer>* bufs[] = {&in.q, &in.k, &in.v};
    const int64_t sizes[] = {n * q_dim, n * kv_dim, n * kv_dim};
    for (int i = 0; i < 3; ++i) {
      const std::vector<float> host = random_row(sizes[i], seed + 7 * i, i == 2 ? 1.0f : 2.0f);
      EXPECT_TRUE(backend.alloc(sizes[i], bufs[i]).ok());
      backend.write(host.data(), sizes[i], (*bufs[i])->data());
    }
    EXPECT_TRUE(backend.alloc(n * q_dim, &in.out).ok());
    return in;
  };
  auto positions = [](int64_t start, int64_t n) {
    std::vector<int32_t> p(n);
    std::iota(p.begin(), p.end(), (int32_t)start);
    return p;
  };
  // The histories.
  auto history = [&](PagedKvCache& cache, int64_t n, uint64_t seed) {
    Inputs in = inputs(n, seed);
    const std::vector<int32_t> pos = positions(0, n);
    backend.attention(cache, layer, in.q->data(), in.k->data(), in.v->data(), pos.data(), n, ap, in.out->data());
  };
  history(decode_a, 40, 100);
  history(decode_d, 130, 200);
  // The step.
  const std::vector<AttentionChunk> chunks = {
      {&decode_a, 1}, {&prompt_b, prompt_tokens}, {&shared_c, 7}, {&decode_d, 1}};
  std::vector<int32_t> pos;
  for (const std::vector<int32_t>& p :
       {positions(40, 1), positions(0, prompt_tokens), positions(16, 7), positions(130, 1)}) {
    pos.insert(pos.end(), p.begin(), p.end());
  }
  const int64_t n = (int64_t)pos.size();
  Inputs in = inputs(n, 300);
  if (batched) {
    backend.attention_batch(chunks, layer, in.q->data(), in.k->data(), in.v->data(), pos.data(), ap, in.out->data());
  } else {
    int64_t t = 0;
    for (const AttentionChunk& c : chunks) {
      backend.attention(*c.kv, layer, in.q->data() + t * q_dim, in.k->data() + t * kv_dim, in.v->data() + t * kv_dim,
                        pos.data() + t, c.n_tokens, ap, in.out->data() + t * q_dim);
      t += c.n_tokens;
    }
  }
  std::vector<float> out(n * q_dim);
  backend.read(in.out->data(), n * q_dim, out.data());
  EXPECT_TRUE(backend.health().ok()) << backend.health().message();
  return out;
}

}  // namespace pginfer::testing
