// tests/gpu/cuda_ops_test.cpp: every operation of the CUDA backend against the CPU backend on the same
// inputs (weights of synthetic models), judged by normalised mean square error. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "engine/model.h"
#include "engine/sampler.h"
#include "gpu_test_util.h"
#include "tests/unit/attention_batch_case.h"
#include "test_models.h"

namespace pginfer {
namespace {

using testing::download;
using testing::nmse;
using testing::random_row;
using testing::synthetic_model;
using testing::upload;

// The CPU and CUDA backends prepared for one model.
struct Pair {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> cpu, gpu;
};

// Prints a figure the report quotes.
void report(const std::string& what, double value) {
  std::printf("[ NMSE     ] %-40s %.3e\n", what.c_str(), value);
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override { PGI_REQUIRE_CUDA(probe_); }
  Pair open(const std::string& shape, TensorType type) {
    Pair p;
    EXPECT_TRUE(Model::load(synthetic_model(shape, type), &p.model).ok());
    p.cpu = make_cpu_backend({2});
    EXPECT_TRUE(p.cpu->prepare(*p.model).ok());
    std::string why;
    p.gpu = testing::cuda_backend_or_null(&why);
    EXPECT_NE(p.gpu, nullptr) << why;
    Status st = p.gpu->prepare(*p.model);
    EXPECT_TRUE(st.ok()) << st.message();
    return p;
  }
  std::unique_ptr<Backend> probe_;
};

const TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
                             TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

// Embedding rows are dequantized by the same header (kernels/common/dequant_block.h) on both sides and the
// device code has no fused multiply-adds: bit-identical.
TEST_F(CudaOps, EmbedIsBitIdentical) {
  for (TensorType type : kTypes) {
    Pair p = open("tiny", type);
    const GgufTensor& table = p.model->token_embd();
    const int64_t dim = table.ne[0];
    std::vector<int32_t> ids = {0, 1, 31999, 12345, 7};
    std::vector<float> want(ids.size() * dim);
    p.cpu->embed(table, ids.data(), (int64_t)ids.size(), want.data());
    std::unique_ptr<ActivationBuffer> out;
    ASSERT_TRUE(p.gpu->alloc((int64_t)want.size(), &out).ok());
    p.gpu->embed(table, ids.data(), (int64_t)ids.size(), out->data());
    std::vector<float> got = download(*p.gpu, out->data(), (int64_t)want.size());
    EXPECT_EQ(got, want) << type_name(type) << " (table " << type_name(table.type) << ")";
    report(std::string("embed ") + type_name(table.type), nmse(got, want));
  }
}

TEST_F(CudaOps, RmsNorm) {
  Pair p = open("tiny", TensorType::F32);
  const int64_t dim = p.model->config().n_embd, n = 7;
  std::vector<float> x = random_row(n * dim, 11, 3.0f), want(n * dim);
  p.cpu->rms_norm(x.data(), *p.model->layers()[0].attn_norm, 1e-5f, n, dim, want.data());
  auto xb = upload(*p.gpu, x);
  std::unique_ptr<ActivationBuffer> out;
  ASSERT_TRUE(p.gpu->alloc(n * dim, &out).ok());
  p.gpu->rms_norm(xb->data(), *p.model->layers()[0].attn_norm, 1e-5f, n, dim, out->data());
  const double e = nmse(download(*p.gpu, out->data(), n * dim), want);
  report("rms_norm", e);
  EXPECT_LT(e, 1e-12);
}

// Matrix products on the three GPU paths: one token (matrix-vector), 5 tokens (the batched matrix-vector
// kernel) and 16 (dequantize + cuBLAS), with and without bias. Both backends round activations to the
// weight type's dot partner (Q8_0/Q8_K) or to F16/BF16 first, so only summation order separates them, and
// for quantized weights on the cuBLAS path the F16 rounding of its operands. That path multiplies the F16 copies
// prepare() keeps of quantized matrices; a backend without them dequantizes at each product, to the same values.
TEST_F(CudaOps, MatmulEveryTypeAndPath) {
  CudaBackendOptions no_copies;
  no_copies.f16_weight_copies = false;
  for (const char* shape : {"tiny", "tiny-qwen2"}) {
    for (TensorType type : kTypes) {
      Pair p = open(shape, type);
      std::string why;
      std::unique_ptr<Backend> dequantizing = testing::cuda_backend_or_null(&why, no_copies);
      ASSERT_NE(dequantizing, nullptr) << why;
      ASSERT_TRUE(dequantizing->prepare(*p.model).ok());
      const LayerWeights& L = p.model->layers()[0];
      for (const GgufTensor* w : {L.wq, L.ffn_down}) {
        const GgufTensor* bias = w == L.wq ? L.bq : nullptr;
        const int64_t k = w->ne[0], rows = w->ne[1];
        for (int64_t n : {1, 5, 16}) {
          std::vector<float> x = random_row(n * k, 100 + n), want(n * rows);
          p.cpu->matmul(*w, bias, x.data(), n, want.data());
          auto xb = upload(*p.gpu, x);
          std::unique_ptr<ActivationBuffer> out;
          ASSERT_TRUE(p.gpu->alloc(n * rows, &out).ok());
          p.gpu->matmul(*w, bias, xb->data(), n, out->data());
          const std::vector<float> got = download(*p.gpu, out->data(), n * rows);
          const double e = nmse(got, want);
          if (n >= 8) {
            auto xd = upload(*dequantizing, x);
            std::unique_ptr<ActivationBuffer> out_d;
            ASSERT_TRUE(dequantizing->alloc(n * rows, &out_d).ok());
            dequantizing->matmul(*w, bias, xd->data(), n, out_d->data());
            EXPECT_EQ(download(*dequantizing, out_d->data(), n * rows), got)
                << shape << " " << w->name << " " << type_name(w->type) << ": F16 copies and dequantizing differ";
          }
          // Same rounded activations as the CPU: float rounding only for the matrix-vector kernels; the
          // cuBLAS path adds F16 rounding of dequantized weights and of Q8-rounded activations.
          const bool quantized = w->type != TensorType::F32 && w->type != TensorType::F16 && w->type != TensorType::BF16;
          const double bound = n < 8 || !quantized ? 1e-10 : 1e-6;
          report(std::string("matmul ") + shape + " " + w->name + " " + type_name(w->type) + " n=" + std::to_string(n), e);
          EXPECT_LT(e, bound) << shape << " " << w->name << " " << type_name(w->type) << " n=" << n;
        }
      }
    }
  }
}

// The fused products of a layer (Backend::matmuls for q, k and v with their biases, matmul_add into the residual,
// matmul_swiglu for gate and up): with few tokens one matrix-vector launch each on the GPU, which must give to the
// bit what the separate GPU operations give (the same kernels' sums), and what the CPU's separate operations give
// (as MatmulEveryTypeAndPath). With 16 tokens, cuBLAS products of activations converted once.
TEST_F(CudaOps, FusedProductsEqualSeparateOnes) {
  for (TensorType type : kTypes) {
    Pair p = open("tiny-qwen2", type);  // biases on q, k and v
    const LayerWeights& L = p.model->layers()[0];
    const int64_t k = L.wq->ne[0];
    for (int64_t n : {1, 5, 16}) {
      const std::string what = std::string(type_name(type)) + " n=" + std::to_string(n);
      const double bound = n >= 8 && type != TensorType::F32 && type != TensorType::F16 && type != TensorType::BF16
                               ? 1e-6
                               : 1e-10;
      const std::vector<float> x = random_row(n * k, 300 + n);
      auto xb = upload(*p.gpu, x);
      // Outputs of rows x n floats on the GPU, the same on the CPU; a residual to add to.
      auto gpu_out = [&](const GgufTensor& w) {
        std::unique_ptr<ActivationBuffer> b;
        EXPECT_TRUE(p.gpu->alloc(n * w.ne[1], &b).ok());
        return b;
      };
      // q, k, v.
      const GgufTensor* ws[] = {L.wq, L.wk, L.wv};
      const GgufTensor* bs[] = {L.bq, L.bk, L.bv};
      std::vector<std::unique_ptr<ActivationBuffer>> fused, separate;
      std::vector<Product> products;
      for (int i = 0; i < 3; ++i) {
        fused.push_back(gpu_out(*ws[i]));
        separate.push_back(gpu_out(*ws[i]));
        products.push_back({ws[i], bs[i], fused.back()->data()});
        p.gpu->matmul(*ws[i], bs[i], xb->data(), n, separate.back()->data());
      }
      p.gpu->matmuls(products, xb->data(), n);
      for (int i = 0; i < 3; ++i) {
        const int64_t m = n * ws[i]->ne[1];
        std::vector<float> want(m);
        p.cpu->matmul(*ws[i], bs[i], x.data(), n, want.data());
        const std::vector<float> got = download(*p.gpu, fused[i]->data(), m);
        EXPECT_EQ(got, download(*p.gpu, separate[i]->data(), m)) << what << " " << ws[i]->name;
        EXPECT_LT(nmse(got, want), bound) << what << " " << ws[i]->name;
      }
      // Residual: y += wo x.
      const GgufTensor& wo = *L.wo;
      const std::vector<float> residual = random_row(n * wo.ne[1], 400 + n);
      auto y_fused = upload(*p.gpu, residual), y_separate = upload(*p.gpu, residual);
      auto tmp = gpu_out(wo);
      p.gpu->matmul_add(wo, L.bo, xb->data(), n, tmp->data(), y_fused->data());
      p.gpu->matmul(wo, L.bo, xb->data(), n, tmp->data());
      p.gpu->add(y_separate->data(), tmp->data(), n * wo.ne[1], y_separate->data());
      std::vector<float> y_cpu = residual, tmp_cpu(n * wo.ne[1]);
      p.cpu->matmul_add(wo, L.bo, x.data(), n, tmp_cpu.data(), y_cpu.data());
      const std::vector<float> got_add = download(*p.gpu, y_fused->data(), n * wo.ne[1]);
      // With 16 tokens the sum is cuBLAS's beta = 1, whose kernel may sum in another order than beta = 0's.
      const std::vector<float> separate_add = download(*p.gpu, y_separate->data(), n * wo.ne[1]);
      if (n < 8) {
        EXPECT_EQ(got_add, separate_add) << what << " matmul_add";
      } else {
        EXPECT_LT(nmse(got_add, separate_add), 1e-12) << what << " matmul_add";
      }
      EXPECT_LT(nmse(got_add, y_cpu), bound) << what << " matmul_add";
      // Feed-forward: swiglu(gate x, up x).
      const int64_t m = n * L.ffn_gate->ne[1];
      auto g_fused = gpu_out(*L.ffn_gate), u_fused = gpu_out(*L.ffn_up);
      auto g_separate = gpu_out(*L.ffn_gate), u_separate = gpu_out(*L.ffn_up);
      p.gpu->matmul_swiglu(*L.ffn_gate, *L.ffn_up, xb->data(), n, g_fused->data(), u_fused->data());
      p.gpu->matmul(*L.ffn_gate, nullptr, xb->data(), n, g_separate->data());
      p.gpu->matmul(*L.ffn_up, nullptr, xb->data(), n, u_separate->data());
      p.gpu->swiglu(g_separate->data(), u_separate->data(), m, g_separate->data());
      std::vector<float> g_cpu(m), u_cpu(m);
      p.cpu->matmul_swiglu(*L.ffn_gate, *L.ffn_up, x.data(), n, g_cpu.data(), u_cpu.data());
      const std::vector<float> got_ffn = download(*p.gpu, g_fused->data(), m);
      EXPECT_EQ(got_ffn, download(*p.gpu, g_separate->data(), m)) << what << " matmul_swiglu";
      EXPECT_LT(nmse(got_ffn, g_cpu), bound * 10) << what << " matmul_swiglu";
      report("fused products tiny-qwen2 " + what, nmse(got_ffn, g_cpu));
    }
    EXPECT_TRUE(p.gpu->health().ok()) << p.gpu->health().message();
  }
}

TEST_F(CudaOps, RopeBothStylesAndFactors) {
  for (const char* shape : {"tiny", "tiny-qwen2", "tiny-llama3"}) {
    Pair p = open(shape, TensorType::F32);
    const ModelConfig& c = p.model->config();
    RopeParams rp;
    rp.style = c.arch->rope_style;
    rp.n_rot = c.n_rot;
    rp.freq_base = c.rope_freq_base;
    rp.freq_scale = c.rope_freq_scale;
    rp.freq_factors = p.model->rope_freqs();
    const int64_t n = 6;
    std::vector<int32_t> pos = {0, 1, 2, 100, 1000, 4000};
    std::vector<float> x = random_row(n * c.q_dim(), 5), want = x;
    p.cpu->rope(want.data(), pos.data(), n, c.n_head, c.head_dim, rp);
    auto xb = upload(*p.gpu, x);
    p.gpu->rope(xb->data(), pos.data(), n, c.n_head, c.head_dim, rp);
    const std::vector<float> got = download(*p.gpu, xb->data(), n * c.q_dim());
    const double e = nmse(got, want);
    report(std::string("rope ") + shape, e);
    EXPECT_LT(e, 1e-10) << shape;
    // Queries and keys in one launch (rope_qk): the same values as one call each.
    const std::vector<float> keys = random_row(n * c.kv_dim(), 6);
    auto qb = upload(*p.gpu, x), kb = upload(*p.gpu, keys), kb_alone = upload(*p.gpu, keys);
    p.gpu->rope_qk(qb->data(), kb->data(), pos.data(), n, c.n_head, c.n_head_kv, c.head_dim, rp);
    p.gpu->rope(kb_alone->data(), pos.data(), n, c.n_head_kv, c.head_dim, rp);
    EXPECT_EQ(download(*p.gpu, qb->data(), n * c.q_dim()), got) << shape;
    EXPECT_EQ(download(*p.gpu, kb->data(), n * c.kv_dim()), download(*p.gpu, kb_alone->data(), n * c.kv_dim()))
        << shape;
  }
}

TEST_F(CudaOps, SwigluAndAdd) {
  Pair p = open("tiny", TensorType::F32);
  const int64_t n = 3000;
  std::vector<float> g = random_row(n, 1, 6.0f), u = random_row(n, 2), want(n), sum(n);
  p.cpu->swiglu(g.data(), u.data(), n, want.data());
  p.cpu->add(g.data(), u.data(), n, sum.data());
  auto gb = upload(*p.gpu, g), ub = upload(*p.gpu, u);
  std::unique_ptr<ActivationBuffer> out, out2;
  ASSERT_TRUE(p.gpu->alloc(n, &out).ok());
  ASSERT_TRUE(p.gpu->alloc(n, &out2).ok());
  p.gpu->swiglu(gb->data(), ub->data(), n, out->data());
  p.gpu->add(gb->data(), ub->data(), n, out2->data());
  const double e = nmse(download(*p.gpu, out->data(), n), want);
  report("swiglu", e);
  EXPECT_LT(e, 1e-10);
  EXPECT_EQ(download(*p.gpu, out2->data(), n), sum);
}

// A prompt of several tokens, then single tokens, through the KV cache: grouped heads, causal masking; a
// long prompt, then single tokens over more than 64 keys, which split the keys into ranges merged
// afterwards (cuda/attention.h).
TEST_F(CudaOps, AttentionPromptThenDecode) {
  for (const char* shape : {"tiny", "tiny-llama3"}) {
    Pair p = open(shape, TensorType::F32);
    const ModelConfig& c = p.model->config();
    const AttentionParams ap = AttentionParams::of(c);
    std::unique_ptr<KvCache> kc, kg;
    ASSERT_TRUE(p.cpu->create_kv_cache(2, 512, c.kv_dim(), &kc).ok());
    ASSERT_TRUE(p.gpu->create_kv_cache(2, 512, c.kv_dim(), &kg).ok());
    int32_t next = 0;
    for (int64_t n : {9, 1, 1, 20, 300, 1, 1, 3}) {
      std::vector<int32_t> pos(n);
      for (auto& v : pos) v = next++;
      std::vector<float> q = random_row(n * c.q_dim(), 30 + next, 2.0f);
      std::vector<float> k = random_row(n * c.kv_dim(), 40 + next, 2.0f);
      std::vector<float> v = random_row(n * c.kv_dim(), 50 + next);
      std::vector<float> want(n * c.q_dim());
      p.cpu->attention(*kc, 1, q.data(), k.data(), v.data(), pos.data(), n, ap, want.data());
      auto qb = upload(*p.gpu, q), kb = upload(*p.gpu, k), vb = upload(*p.gpu, v);
      std::unique_ptr<ActivationBuffer> out;
      ASSERT_TRUE(p.gpu->alloc(n * c.q_dim(), &out).ok());
      p.gpu->attention(*kg, 1, qb->data(), kb->data(), vb->data(), pos.data(), n, ap, out->data());
      const double e = nmse(download(*p.gpu, out->data(), n * c.q_dim()), want);
      report(std::string("attention ") + shape + " n=" + std::to_string(n) + " at " + std::to_string(pos[0]), e);
      EXPECT_LT(e, 1e-5) << shape << " n=" << n;
    }
  }
}

// The paged pool (the serving loop's cache) through a shuffled block table: a prompt chunk, chunks at later
// positions, single tokens, and a long chunk whose queries split the keys into ranges, each checked against
// the CPU backend's paged attention over the same table, and against the contiguous CUDA cache, which runs
// the same kernel over the same values in the same order (so equal to the bit). A second sequence's blocks,
// written first, must not leak into the first's results.
TEST_F(CudaOps, PagedAttentionMatchesCpuAndContiguous) {
  for (const char* shape : {"tiny", "tiny-llama3"}) {
    Pair p = open(shape, TensorType::F32);
    const ModelConfig& c = p.model->config();
    const AttentionParams ap = AttentionParams::of(c);
    const int64_t n_blocks = 40, block_size = 16, layer = 1;
    std::unique_ptr<KvPool> pool_cpu, pool_gpu;
    ASSERT_TRUE(p.cpu->create_kv_pool(2, n_blocks, block_size, c.kv_dim(), &pool_cpu).ok());
    Status st = p.gpu->create_kv_pool(2, n_blocks, block_size, c.kv_dim(), &pool_gpu);
    ASSERT_TRUE(st.ok()) << st.message();
    std::vector<int32_t> table(n_blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(5));
    PagedKvCache seq_cpu(*pool_cpu), seq_gpu(*pool_gpu), other_gpu(*pool_gpu);
    seq_cpu.blocks = seq_gpu.blocks = std::vector<int32_t>(table.begin(), table.begin() + 30);
    other_gpu.blocks = std::vector<int32_t>(table.begin() + 30, table.end());
    std::unique_ptr<KvCache> contiguous;
    ASSERT_TRUE(p.gpu->create_kv_cache(2, seq_gpu.capacity(), c.kv_dim(), &contiguous).ok());

    // The other sequence: 100 positions of its own.
    auto run = [&](Backend& b, KvCache& cache, const std::vector<int32_t>& pos, int seed) {
      const int64_t n = (int64_t)pos.size();
      std::vector<float> q = random_row(n * c.q_dim(), 30 + seed, 2.0f);
      std::vector<float> k = random_row(n * c.kv_dim(), 40 + seed, 2.0f);
      std::vector<float> v = random_row(n * c.kv_dim(), 50 + seed);
      auto qb = upload(b, q), kb = upload(b, k), vb = upload(b, v);
      std::unique_ptr<ActivationBuffer> out;
      EXPECT_TRUE(b.alloc(n * c.q_dim(), &out).ok());
      b.attention(cache, layer, qb->data(), kb->data(), vb->data(), pos.data(), n, ap, out->data());
      return download(b, out->data(), n * c.q_dim());
    };
    std::vector<int32_t> other_pos(100);
    std::iota(other_pos.begin(), other_pos.end(), 0);
    run(*p.gpu, other_gpu, other_pos, 999);

    int32_t next = 0;
    for (int64_t n : {9, 1, 1, 20, 300, 1, 1, 3, 100}) {
      std::vector<int32_t> pos(n);
      for (auto& v : pos) v = next++;
      const std::vector<float> want = run(*p.cpu, seq_cpu, pos, next);
      const std::vector<float> paged = run(*p.gpu, seq_gpu, pos, next);
      const std::vector<float> flat = run(*p.gpu, *contiguous, pos, next);
      const double e = nmse(paged, want);
      report(std::string("paged attention ") + shape + " n=" + std::to_string(n) + " at " + std::to_string(pos[0]), e);
      EXPECT_LT(e, 1e-5) << shape << " n=" << n;
      EXPECT_EQ(paged, flat) << shape << " n=" << n << ": paged and contiguous differ";
    }
    EXPECT_TRUE(p.gpu->health().ok()) << p.gpu->health().message();
  }
}

// One serving step's chunks (decode tokens after histories, a prompt, a prompt sharing the block that prompt
// writes in the same call; tests/unit/attention_batch_case.h) in one attention_batch call, which the CUDA backend
// runs as one store and one attention launch over every sequence's block table: what per-chunk CUDA calls give
// (the same kernel; only the key ranges a token is split into may differ, so float rounding apart) and what the
// CPU backend gives. For both GPU paths the model's head shapes, grouped heads included.
TEST_F(CudaOps, BatchedAttentionMatchesPerChunkAndCpu) {
  for (const char* shape : {"tiny", "tiny-llama3"}) {
    Pair p = open(shape, TensorType::F32);
    const ModelConfig& c = p.model->config();
    const AttentionParams ap = AttentionParams::of(c);
    const std::vector<float> want = testing::run_attention_batch_case(*p.cpu, ap, false);
    const std::vector<float> per_chunk = testing::run_attention_batch_case(*p.gpu, ap, false);
    const std::vector<float> batched = testing::run_attention_batch_case(*p.gpu, ap, true);
    ASSERT_EQ(batched.size(), want.size());
    const double e_cpu = nmse(batched, want), e_chunks = nmse(batched, per_chunk);
    report(std::string("batched attention ") + shape + " vs cpu", e_cpu);
    report(std::string("batched attention ") + shape + " vs per-chunk", e_chunks);
    EXPECT_LT(e_cpu, 1e-5) << shape;
    EXPECT_LT(e_chunks, 1e-10) << shape;
    EXPECT_LT(nmse(per_chunk, want), 1e-5) << shape;
    EXPECT_TRUE(p.gpu->health().ok()) << p.gpu->health().message();
  }
}

// The same serving step with a prompt of 150 tokens, which sends the batched call to the tiled kernel
// (attention_tiled.h): 3 tiles of the prompt (the last of 22 tokens), a tile for each other chunk; per chunk, only
// the prompt's call is tiled. Against the CPU backend, for the model's heads (64 values, grouped) and for heads of
// 128 values. The tiled kernel rounds the softmax weights to F16: a larger but still small error.
TEST_F(CudaOps, TiledAttentionMatchesCpu) {
  Pair p = open("tiny", TensorType::F32);
  AttentionParams wide;
  wide.n_head = 4;
  wide.n_head_kv = 2;
  wide.head_dim = 128;
  wide.scale = 1.0f / std::sqrt(128.0f);
  for (const AttentionParams& ap : {AttentionParams::of(p.model->config()), wide}) {
    const std::string heads = std::to_string(ap.n_head) + "x" + std::to_string(ap.head_dim) + "/" +
                              std::to_string(ap.n_head_kv);
    const std::vector<float> want = testing::run_attention_batch_case(*p.cpu, ap, true, 150);
    const std::vector<float> batched = testing::run_attention_batch_case(*p.gpu, ap, true, 150);
    const std::vector<float> per_chunk = testing::run_attention_batch_case(*p.gpu, ap, false, 150);
    ASSERT_EQ(batched.size(), want.size());
    report("tiled attention " + heads + " vs cpu", nmse(batched, want));
    report("tiled attention " + heads + " vs per-chunk", nmse(batched, per_chunk));
    EXPECT_LT(nmse(batched, want), 1e-5) << heads;
    EXPECT_LT(nmse(per_chunk, want), 1e-5) << heads;
    EXPECT_LT(nmse(batched, per_chunk), 1e-5) << heads;
    for (float x : batched) ASSERT_TRUE(std::isfinite(x)) << heads;
    EXPECT_TRUE(p.gpu->health().ok()) << p.gpu->health().message();
  }
}

// argmax_rows on the device equals the sampler's argmax on the host, edge cases included: ties (the first wins),
// NaNs (never chosen; a row starting with one gives 0), infinities, zeros of both signs, a maximum in the last
// place, and random rows of a large vocabulary.
TEST_F(CudaOps, ArgmaxRowsEqualsTheSamplers) {
  Pair p = open("tiny", TensorType::F32);
  const int64_t V = 151936;  // qwen2's vocabulary
  const float nan = std::nanf(""), inf = INFINITY;
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 6; ++i) rows.push_back(random_row(V, 900 + i, 4.0f));
  rows[1][77] = rows[1][150000] = 100.0f;  // a tie: 77
  rows[2][0] = nan;                         // 0
  rows[3][5] = nan, rows[3][6] = inf, rows[3][7] = inf;  // 6
  rows[4].assign(V, -inf);                  // all -inf: 0
  rows[5].assign(V, 0.0f);
  rows[5][3] = -0.0f;
  rows[5][V - 1] = 1e-30f;                  // the last place
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  auto dev = upload(*p.gpu, flat);
  std::vector<int32_t> got(rows.size(), -1);
  ASSERT_TRUE(p.gpu->argmax_rows(dev->data(), (int64_t)rows.size(), V, got.data()));
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(got[r], argmax(rows[r])) << "row " << r;
  EXPECT_EQ(got[1], 77);
  EXPECT_EQ(got[2], 0);
  EXPECT_EQ(got[3], 6);
  EXPECT_EQ(got[5], V - 1);
  EXPECT_TRUE(p.gpu->health().ok()) << p.gpu->health().message();
}

// A block table that does not cover the positions, or names a block outside the pool, is refused (the
// backend fails and says why) instead of writing outside the pool.
TEST_F(CudaOps, PagedAttentionRefusesABadBlockTable) {
  Pair p = open("tiny", TensorType::F32);
  const ModelConfig& c = p.model->config();
  AttentionParams ap;
  ap.n_head = c.n_head;
  ap.n_head_kv = c.n_head_kv;
  ap.head_dim = c.head_dim;
  ap.scale = 1.0f;
  std::unique_ptr<KvPool> pool;
  ASSERT_TRUE(p.gpu->create_kv_pool(1, 4, 16, c.kv_dim(), &pool).ok());
  PagedKvCache seq(*pool);
  seq.blocks = {2, 7};  // block 7 does not exist
  auto q = upload(*p.gpu, random_row(c.q_dim(), 1)), k = upload(*p.gpu, random_row(c.kv_dim(), 2));
  auto v = upload(*p.gpu, random_row(c.kv_dim(), 3));
  std::unique_ptr<ActivationBuffer> out;
  ASSERT_TRUE(p.gpu->alloc(c.q_dim(), &out).ok());
  const int32_t pos = 20;
  p.gpu->attention(seq, 0, q->data(), k->data(), v->data(), &pos, 1, ap, out->data());
  EXPECT_FALSE(p.gpu->health().ok());
  EXPECT_NE(p.gpu->health().message().find("outside the pool"), std::string::npos) << p.gpu->health().message();
}

// A pool larger than the device is OutOfMemory, not a crash; the backend stays usable.
TEST_F(CudaOps, KvPoolTooLargeIsOutOfMemory) {
  Pair p = open("tiny", TensorType::F32);
  std::unique_ptr<KvPool> pool;
  const Status st = p.gpu->create_kv_pool(64, INT32_MAX, 1024, 8192, &pool);
  EXPECT_EQ(st.code(), StatusCode::OutOfMemory) << st.message();
  EXPECT_EQ(pool, nullptr);
  EXPECT_TRUE(p.gpu->health().ok());
  EXPECT_TRUE(p.gpu->create_kv_pool(2, 8, 16, p.model->config().kv_dim(), &pool).ok());
  EXPECT_GT(p.gpu->free_device_memory(), 0);
}

}  // namespace
}  // namespace pginfer
