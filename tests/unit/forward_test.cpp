// tests/unit/forward_test.cpp: the forward pass against a naive reference, batched against one token at a
// time, KV-cache reuse against recomputation, and the real-world tiny GGUF from ../shared.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/executor.h"
#include "engine/gguf_writer.h"
#include "engine/session.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant.h"
#include "tests/unit/attention_batch_case.h"
#include "test_models.h"

namespace pginfer {
namespace {

using testing::synthetic_model;

// Every weight as floats.
std::vector<float> floats(const GgufTensor& t) {
  std::vector<float> out(t.n_elements());
  const size_t stride = row_bytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.n_rows(); ++r) dequantize_row(t.type, t.data + r * stride, out.data() + r * t.ne[0], t.ne[0]);
  return out;
}

// y = W x for W of rows x k, in double.
std::vector<float> matvec(const std::vector<float>& w, int64_t rows, int64_t k, const std::vector<float>& x) {
  std::vector<float> y(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t i = 0; i < k; ++i) s += (double)w[r * k + i] * x[i];
    y[r] = (float)s;
  }
  return y;
}

std::vector<float> rmsnorm(const std::vector<float>& x, const std::vector<float>& w, float eps) {
  double ss = 0;
  for (float v : x) ss += (double)v * v;
  const double scale = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = (float)(x[i] * scale * w[i]);
  return y;
}

// A textbook transformer written for clarity only: logits of every position of `ids`.
std::vector<std::vector<float>> naive_forward(const Model& m, const std::vector<int32_t>& ids) {
  const ModelConfig& c = m.config();
  const int64_t n = (int64_t)ids.size(), hd = c.head_dim;
  const bool neox = c.arch->rope_style == RopeStyle::Neox;
  auto rope = [&](std::vector<float>& v, int64_t heads, int64_t pos) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < c.n_rot / 2; ++i) {
        double factor = 1.0;
        if (m.rope_freqs()) factor = floats(*m.rope_freqs())[i];
        const double theta = pos * c.rope_freq_scale * std::pow((double)c.rope_freq_base, -2.0 * i / c.n_rot) / factor;
        const int64_t a = h * hd + (neox ? i : 2 * i), b = h * hd + (neox ? i + c.n_rot / 2 : 2 * i + 1);
        const double x0 = v[a], x1 = v[b];
        v[a] = (float)(x0 * std::cos(theta) - x1 * std::sin(theta));
        v[b] = (float)(x0 * std::sin(theta) + x1 * std::cos(theta));
      }
    }
  };
  std::vector<float> embd = floats(m.token_embd());
  std::vector<std::vector<float>> x(n);
  for (int64_t t = 0; t < n; ++t) x[t].assign(embd.begin() + ids[t] * c.n_embd, embd.begin() + (ids[t] + 1) * c.n_embd);
  for (const LayerWeights& L : m.layers()) {
    auto wq = floats(*L.wq), wk = floats(*L.wk), wv = floats(*L.wv), wo = floats(*L.wo);
    auto an = floats(*L.attn_norm), fn = floats(*L.ffn_norm);
    auto wg = floats(*L.ffn_gate), wu = floats(*L.ffn_up), wd = floats(*L.ffn_down);
    std::vector<std::vector<float>> q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      auto h = rmsnorm(x[t], an, c.norm_eps);
      q[t] = matvec(wq, c.q_dim(), c.n_embd, h);
      k[t] = matvec(wk, c.kv_dim(), c.n_embd, h);
      v[t] = matvec(wv, c.kv_dim(), c.n_embd, h);
      if (L.bq) {
        auto bq = floats(*L.bq), bk = floats(*L.bk), bv = floats(*L.bv);
        for (int64_t i = 0; i < c.q_dim(); ++i) q[t][i] += bq[i];
        for (int64_t i = 0; i < c.kv_dim(); ++i) k[t][i] += bk[i], v[t][i] += bv[i];
      }
      rope(q[t], c.n_head, t);
      rope(k[t], c.n_head_kv, t);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> att(c.q_dim(), 0.0f);
      for (int64_t h = 0; h < c.n_head; ++h) {
        const int64_t g = h / (c.n_head / c.n_head_kv);
        std::vector<double> s(t + 1);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i) d += (double)q[t][h * hd + i] * k[j][g * hd + i];
          s[j] = d / std::sqrt((double)hd);
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < hd; ++i) att[h * hd + i] += (float)(s[j] / sum * v[j][g * hd + i]);
        }
      }
      auto o = matvec(wo, c.n_embd, c.q_dim(), att);
      for (int64_t i = 0; i < c.n_embd; ++i) x[t][i] += o[i];
      auto h = rmsnorm(x[t], fn, c.norm_eps);
      auto gt = matvec(wg, c.n_ff, c.n_embd, h), up = matvec(wu, c.n_ff, c.n_embd, h);
      for (int64_t i = 0; i < c.n_ff; ++i) gt[i] = gt[i] / (1.0f + std::exp(-gt[i])) * up[i];
      auto d = matvec(wd, c.n_embd, c.n_ff, gt);
      for (int64_t i = 0; i < c.n_embd; ++i) x[t][i] += d[i];
    }
  }
  auto on = floats(m.output_norm()), out = floats(m.output());
  std::vector<std::vector<float>> logits(n);
  for (int64_t t = 0; t < n; ++t) logits[t] = matvec(out, c.n_vocab, c.n_embd, rmsnorm(x[t], on, c.norm_eps));
  return logits;
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
};

Loaded load(const std::string& path, int threads = 2) {
  Loaded l;
  Status st = Model::load(path, &l.model);
  EXPECT_TRUE(st.ok()) << st.message();
  l.backend = make_cpu_backend({threads});
  EXPECT_TRUE(l.backend->prepare(*l.model).ok());
  return l;
}

std::vector<int32_t> test_ids(int n, int64_t vocab, uint64_t seed = 3) {
  std::vector<int32_t> ids(n);
  for (auto& id : ids) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    id = (int32_t)((seed >> 33) % (uint64_t)vocab);
  }
  return ids;
}

// Root-mean-square of a - b relative to the RMS of b.
double relative_rms(const float* a, const float* b, int64_t n) {
  double d = 0, s = 0;
  for (int64_t i = 0; i < n; ++i) d += (double)(a[i] - b[i]) * (a[i] - b[i]), s += (double)b[i] * b[i];
  return std::sqrt(d / std::max(s, 1e-30));
}

class ForwardByShape : public ::testing::TestWithParam<const char*> {};

TEST_P(ForwardByShape, MatchesNaiveReferenceOnF32) {
  Loaded l = load(synthetic_model(GetParam(), TensorType::F32));
  const int64_t V = l.model->config().n_vocab;
  std::vector<int32_t> ids = test_ids(12, V);
  std::unique_ptr<Session> s;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &s).ok());
  std::vector<float> logits;
  ASSERT_TRUE(s->eval(ids, true, &logits).ok());
  auto ref = naive_forward(*l.model, ids);
  int agree = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    // Only the F16 KV cache and rounding of q and probabilities to F16 separate the two.
    EXPECT_LT(relative_rms(logits.data() + t * V, ref[t].data(), V), 5e-3) << "position " << t;
    agree += argmax(std::span<const float>(logits.data() + t * V, V)) == argmax(ref[t]);
  }
  EXPECT_GE(agree, (int)ids.size() - 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ForwardByShape, ::testing::Values("tiny", "tiny-qwen2", "tiny-llama3"));

class ForwardByType : public ::testing::TestWithParam<TensorType> {};

// A prompt evaluated as one batch and token by token gives the same logits. For float weights the batch
// goes through sgemm, whose summation order differs in the last bits (F16/BF16 activation rounding can
// amplify that a little); quantized weights use the same integer kernels either way, well inside the
// tolerance.
TEST_P(ForwardByType, BatchedEqualsTokenByToken) {
  Loaded l = load(synthetic_model("tiny", GetParam()));
  const int64_t V = l.model->config().n_vocab;
  std::vector<int32_t> ids = test_ids(20, V);
  std::unique_ptr<Session> batched, stepwise;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &batched).ok());
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &stepwise).ok());
  std::vector<float> all, one;
  ASSERT_TRUE(batched->eval(ids, true, &all).ok());
  const double tolerance = GetParam() == TensorType::F32 ? 1e-3 : 3e-2;
  int agree = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    ASSERT_TRUE(stepwise->eval(std::span<const int32_t>(&ids[t], 1), false, &one).ok());
    const double err = relative_rms(one.data(), all.data() + t * V, V);
    EXPECT_LT(err, tolerance) << "position " << t;
    agree += argmax(one) == argmax(std::span<const float>(all.data() + t * V, V));
  }
  EXPECT_GE(agree, 19);
}

// Continuing from the KV cache gives what evaluating everything at once gives, and re-evaluating after a
// rewind repeats the first evaluation bit for bit.
TEST_P(ForwardByType, CacheReuseEqualsRecomputation) {
  Loaded l = load(synthetic_model("tiny", GetParam()));
  const int64_t V = l.model->config().n_vocab;
  std::vector<int32_t> ids = test_ids(40, V);
  std::unique_ptr<Session> cached, fresh;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &cached).ok());
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &fresh).ok());
  std::vector<float> first, second, whole;
  ASSERT_TRUE(cached->eval(std::span<const int32_t>(ids.data(), 24), false, &first).ok());
  ASSERT_TRUE(cached->eval(std::span<const int32_t>(ids.data() + 24, 16), true, &second).ok());
  ASSERT_TRUE(fresh->eval(ids, true, &whole).ok());
  const double tolerance = GetParam() == TensorType::F32 ? 1e-3 : 3e-2;
  for (int t = 0; t < 16; ++t) {
    EXPECT_LT(relative_rms(second.data() + t * V, whole.data() + (24 + t) * V, V), tolerance) << t;
  }
  ASSERT_TRUE(cached->rewind(24).ok());
  std::vector<float> again;
  ASSERT_TRUE(cached->eval(std::span<const int32_t>(ids.data() + 24, 16), true, &again).ok());
  EXPECT_EQ(again, second);
}

// Three sequences evaluated together by one executor (prompt chunks of different lengths in one pass, then
// decode steps of one token each) give the logits each gives alone. Quantized products round each token
// on its own, so they match exactly; float weights go through sgemm tiles once a pass has 8 tokens or more,
// which sum in another order, so they match to float precision.
TEST_P(ForwardByType, BatchedSequencesEqualSeparateOnes) {
  const TensorType type = GetParam();
  Loaded l = load(testing::synthetic_model("tiny", type));
  const int64_t n_vocab = l.model->config().n_vocab;
  const std::vector<std::vector<int32_t>> prompts = {test_ids(5, n_vocab, 1), test_ids(9, n_vocab, 2),
                                                     test_ids(3, n_vocab, 3)};
  const bool exact = type != TensorType::F32 && type != TensorType::F16 && type != TensorType::BF16;
  // The tolerances of BatchedEqualsTokenByToken above for float weights.
  const double tolerance = type == TensorType::F32 ? 1e-3 : 3e-2;
  auto expect_same = [&](const std::vector<float>& a, const float* b, const char* what) {
    if (!exact) {
      EXPECT_LT(relative_rms(a.data(), b, n_vocab), tolerance) << what;
      return;
    }
    for (int64_t i = 0; i < n_vocab; ++i) ASSERT_EQ(a[i], b[i]) << what << " logit " << i;
  };
  // Alone: each prompt, then 4 greedy tokens, one session each.
  std::vector<std::vector<std::vector<float>>> alone(prompts.size());
  std::vector<std::vector<int32_t>> next(prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    std::unique_ptr<Session> session;
    ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &session).ok());
    std::vector<float> logits;
    std::vector<int32_t> in = prompts[s];
    for (int step = 0; step < 5; ++step) {
      ASSERT_TRUE(session->eval(in, false, &logits).ok());
      alone[s].push_back(logits);
      in.assign(1, argmax(logits));
      next[s].push_back(in[0]);
    }
  }
  // Together: one executor, the three caches.
  std::unique_ptr<Executor> executor;
  ASSERT_TRUE(Executor::create(*l.model, *l.backend, 32, &executor).ok());
  std::vector<std::unique_ptr<Session>> sessions(prompts.size());
  std::vector<std::vector<float>> logits(prompts.size(), std::vector<float>(n_vocab));
  for (auto& session : sessions) ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &session).ok());
  for (int step = 0; step < 5; ++step) {
    std::vector<std::vector<int32_t>> in(prompts.size());
    std::vector<SequenceChunk> chunks(prompts.size());
    for (size_t s = 0; s < prompts.size(); ++s) {
      in[s] = step == 0 ? prompts[s] : std::vector<int32_t>{next[s][step - 1]};
      chunks[s].kv = &sessions[s]->kv();
      chunks[s].start = sessions[s]->n_past();
      chunks[s].ids = in[s];
      chunks[s].logits = logits[s].data();
    }
    ASSERT_TRUE(executor->forward(chunks).ok());
    for (size_t s = 0; s < prompts.size(); ++s) {
      sessions[s]->advance((int64_t)in[s].size());
      expect_same(alone[s][step], logits[s].data(), "batched");
    }
  }
}

// A sequence whose cache is paged (blocks of 16 positions from a shared pool, in scattered order, the
// prompt in chunks that end inside blocks) gives exactly the logits of a contiguous cache: only where the
// keys and values are stored changes.
TEST_P(ForwardByType, PagedCacheEqualsContiguous) {
  Loaded l = load(testing::synthetic_model("tiny", GetParam()));
  const ModelConfig& c = l.model->config();
  const std::vector<int32_t> prompt = test_ids(37, c.n_vocab, 4);
  std::unique_ptr<Session> contiguous;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &contiguous).ok());
  std::unique_ptr<KvPool> pool;
  ASSERT_TRUE(l.backend->create_kv_pool(c.n_layer, 8, 16, c.kv_dim(), &pool).ok());
  PagedKvCache paged(*pool);
  paged.blocks = {5, 2, 7};  // positions 0-15, 16-31, 32-47
  std::unique_ptr<Executor> executor;
  ASSERT_TRUE(Executor::create(*l.model, *l.backend, 64, &executor).ok());
  std::vector<float> want, got(c.n_vocab);
  int64_t done = 0;
  for (int64_t chunk : {11, 9, 17}) {
    const std::span<const int32_t> ids(prompt.data() + done, (size_t)chunk);
    ASSERT_TRUE(contiguous->eval(ids, false, &want).ok());
    SequenceChunk ch;
    ch.kv = &paged;
    ch.start = done;
    ch.ids = ids;
    ch.logits = got.data();
    ASSERT_TRUE(executor->forward(std::span<const SequenceChunk>(&ch, 1)).ok());
    for (int64_t i = 0; i < c.n_vocab; ++i) ASSERT_EQ(want[i], got[i]) << "after " << done + chunk << " tokens, logit " << i;
    done += chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, ForwardByType,
                         ::testing::Values(TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                                           TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K),
                         [](const auto& info) { return std::string(type_name(info.param)); });

TEST(Forward, ThreadCountDoesNotChangeResults) {
  const std::string path = synthetic_model("tiny", TensorType::Q4_K);
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    Loaded l = load(path, threads);
    std::unique_ptr<Session> s;
    ASSERT_TRUE(Session::create(*l.model, *l.backend, 64, &s).ok());
    std::vector<float> logits;
    ASSERT_TRUE(s->eval(test_ids(16, l.model->config().n_vocab), true, &logits).ok());
    results.push_back(logits);
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

TEST(Forward, RejectsBadInput) {
  Loaded l = load(synthetic_model("tiny", TensorType::Q8_0));
  std::unique_ptr<Session> s;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 8, &s).ok());
  std::vector<float> logits;
  std::vector<int32_t> bad = {1, 32000};
  Status st = s->eval(bad, false, &logits);
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_NE(st.message().find("outside the vocabulary"), std::string::npos) << st.message();
  std::vector<int32_t> negative = {-1};
  EXPECT_EQ(s->eval(negative, false, &logits).code(), StatusCode::InvalidArgument);
  std::vector<int32_t> too_long(9, 5);
  st = s->eval(too_long, false, &logits);
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(s->n_past(), 0);
  EXPECT_EQ(s->eval({}, false, &logits).code(), StatusCode::InvalidArgument);
}

TEST(Forward, LongPromptIsChunked) {
  Loaded l = load(synthetic_model("tiny", TensorType::Q8_0));
  std::unique_ptr<Session> a, b;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 1100, &a).ok());
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 1100, &b).ok());
  std::vector<int32_t> ids = test_ids(1050, l.model->config().n_vocab);
  std::vector<float> whole, tail;
  ASSERT_TRUE(a->eval(ids, false, &whole).ok());
  ASSERT_TRUE(b->eval(std::span<const int32_t>(ids.data(), 512), false, &tail).ok());
  ASSERT_TRUE(b->eval(std::span<const int32_t>(ids.data() + 512, 512), false, &tail).ok());
  ASSERT_TRUE(b->eval(std::span<const int32_t>(ids.data() + 1024, 26), false, &tail).ok());
  EXPECT_EQ(whole, tail);
}

TEST(Forward, RunsTheRealWorldTinyLlama) {
  Loaded l = load(testing::shared_dir() + "/models/llama-2-tiny-random.gguf");
  ASSERT_NE(l.model, nullptr);
  EXPECT_EQ(l.model->config().arch_name, "llama");
  EXPECT_EQ(l.model->config().n_vocab, 32000);
  std::unique_ptr<Session> s;
  ASSERT_TRUE(Session::create(*l.model, *l.backend, 32, &s).ok());
  std::vector<float> logits;
  std::vector<int32_t> ids = {1, 450, 4996, 17354};
  ASSERT_TRUE(s->eval(ids, true, &logits).ok());
  auto ref = naive_forward(*l.model, ids);
  for (size_t t = 0; t < ids.size(); ++t) {
    EXPECT_LT(relative_rms(logits.data() + t * 32000, ref[t].data(), 32000), 5e-3);
  }
}

}  // namespace
}  // namespace pginfer

namespace pginfer {
namespace {

// The two product paths of the CPU backend for float weights (sgemm tiles for many tokens, SIMD dots for
// few) agree to float rounding, on the real rows of a model. Quantized weights take one path for any
// number of tokens; its bit-identity per token is tested in vec_dot_test and kernels_test.
// The backend converts a product's input once for consecutive products that read it (q, k, v); an input
// changed in between, by any operation, is converted again: each product equals one on a fresh backend.
TEST(CpuBackend, ProductsSeeTheirInputChange) {
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    Loaded l = load(synthetic_model("tiny", type));
    const GgufTensor& w = *l.model->layers()[0].wq;
    const int64_t k = w.ne[0], rows = w.ne[1];
    for (int64_t n : {1, 6, 20}) {
      std::vector<float> x(n * k), y(n * rows), want(n * rows);
      uint64_t s = 5 + n;
      for (auto& v : x) s = s * 6364136223846793005ull + 1, v = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
      // What a fresh backend gives for x as it is now.
      auto fresh = [&] {
        std::unique_ptr<Backend> other = make_cpu_backend({2});
        EXPECT_TRUE(other->prepare(*l.model).ok());
        other->matmul(w, nullptr, x.data(), n, want.data());
      };
      l.backend->matmul(w, nullptr, x.data(), n, y.data());
      fresh();
      EXPECT_EQ(y, want) << type_name(type) << " n=" << n;
      l.backend->matmul(w, nullptr, x.data(), n, y.data());  // the same input again: the conversion reused
      EXPECT_EQ(y, want) << type_name(type) << " n=" << n;
      std::vector<float> changed(x.size());
      for (size_t i = 0; i < x.size(); ++i) changed[i] = -0.5f * x[i];
      l.backend->write(changed.data(), n * k, x.data());  // through the backend, at the same address
      x = changed;
      l.backend->matmul(w, nullptr, x.data(), n, y.data());
      fresh();
      EXPECT_EQ(y, want) << type_name(type) << " n=" << n << " after write";
      l.backend->add(x.data(), x.data(), n * k, x.data());  // an operation writing the input in place
      l.backend->matmul(w, nullptr, x.data(), n, y.data());
      fresh();
      EXPECT_EQ(y, want) << type_name(type) << " n=" << n << " after add";
    }
  }
}

TEST(CpuBackend, MatmulPathsAgree) {
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16}) {
    Loaded l = load(synthetic_model("tiny", type));
    const GgufTensor& w = *l.model->layers()[0].ffn_down;
    const int64_t k = w.ne[0], rows = w.ne[1], n = 64;
    std::vector<float> x(n * k);
    uint64_t s = 9;
    for (auto& v : x) s = s * 6364136223846793005ull + 1, v = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
    std::vector<float> batched(n * rows), single(rows);
    l.backend->matmul(w, nullptr, x.data(), n, batched.data());
    for (int64_t t = 0; t < n; ++t) {
      l.backend->matmul(w, nullptr, x.data() + t * k, 1, single.data());
      double err = 0, mag = 0;
      for (int64_t r = 0; r < rows; ++r) {
        err = std::max(err, (double)std::fabs(single[r] - batched[t * rows + r]));
        mag = std::max(mag, (double)std::fabs(single[r]));
      }
      EXPECT_LT(err, 1e-5 * mag) << type_name(type) << " token " << t;
    }
  }
}

// The CPU backend's attention_batch (every chunk's keys and values stored, then all tokens in one loop): bit for
// bit what per-chunk attention calls give, a chunk reading a shared block that an earlier chunk of the call
// writes included.
// tiny F32 rewritten with its 1-D tensors (norm weights) as F16, multiplied by `scale`; the file's path.
std::string tiny_with_f16_norms(float scale) {
  std::unique_ptr<GgufFile> in;
  EXPECT_TRUE(GgufFile::open(synthetic_model("tiny", TensorType::F32), &in).ok());
  GgufWriter w;
  for (const std::string& key : in->keys()) w.copy_value(key, *in->find(key));
  for (const GgufTensor& t : in->tensors()) {
    const GgufTensor* src = &t;
    const bool norm = t.n_dims == 1;
    w.add_tensor(t.name, norm ? TensorType::F16 : t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                 [src, norm, scale](uint8_t* dst, size_t n) {
                   if (!norm) {
                     std::memcpy(dst, src->data, n);
                   } else {
                     const float* v = reinterpret_cast<const float*>(src->data);
                     for (int64_t i = 0; i < src->ne[0]; ++i) {
                       const uint16_t h = fp32_to_fp16(v[i] * scale);
                       std::memcpy(dst + 2 * i, &h, 2);
                     }
                   }
                   return Status::ok_status();
                 });
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("pginfer-forward-f16-norms-" + std::to_string(scale) + ".gguf")).string();
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

// One backend, one model after another, each with F16 norm weights (which the CPU backend keeps as floats): the
// second, loaded once the first is gone (its tensors may then sit at the first's addresses), computes with its own
// norms, as on a fresh backend.
TEST(CpuBackend, ALaterModelGetsItsOwnFloatCopies) {
  std::unique_ptr<Backend> shared = make_cpu_backend({2});
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  std::vector<float> logits;
  {
    std::unique_ptr<Model> first;
    ASSERT_TRUE(Model::load(tiny_with_f16_norms(1.0f), &first).ok());
    ASSERT_TRUE(shared->prepare(*first).ok());
    std::unique_ptr<Session> s;
    ASSERT_TRUE(Session::create(*first, *shared, 16, &s).ok());
    ASSERT_TRUE(s->eval(ids, false, &logits).ok());
  }
  std::unique_ptr<Model> second;
  ASSERT_TRUE(Model::load(tiny_with_f16_norms(3.0f), &second).ok());
  ASSERT_TRUE(shared->prepare(*second).ok());
  std::unique_ptr<Backend> fresh = make_cpu_backend({2});
  ASSERT_TRUE(fresh->prepare(*second).ok());
  std::vector<float> got, want;
  std::unique_ptr<Session> a, b;
  ASSERT_TRUE(Session::create(*second, *shared, 16, &a).ok());
  ASSERT_TRUE(Session::create(*second, *fresh, 16, &b).ok());
  ASSERT_TRUE(a->eval(ids, false, &got).ok());
  ASSERT_TRUE(b->eval(ids, false, &want).ok());
  EXPECT_EQ(got, want);
  EXPECT_NE(want, logits) << "the two models should differ";
}

TEST(CpuBackend, AttentionBatchEqualsPerChunkCalls) {
  std::unique_ptr<Backend> cpu = make_cpu_backend({2});
  AttentionParams ap;
  ap.n_head = 4;
  ap.n_head_kv = 2;
  ap.head_dim = 64;
  ap.scale = 0.125f;
  for (int64_t prompt : {20, 150}) {
    const std::vector<float> per_chunk = testing::run_attention_batch_case(*cpu, ap, false, prompt);
    const std::vector<float> batched = testing::run_attention_batch_case(*cpu, ap, true, prompt);
    ASSERT_FALSE(per_chunk.empty());
    EXPECT_EQ(batched, per_chunk) << prompt << "-token prompt";
  }
}

}  // namespace
}  // namespace pginfer
