// tests/unit/executor_test.cpp: the executor's side of recorded passes (Backend::begin_pass / end_pass), on the
// CPU through a decorator that defers a pass's operations to end_pass, as a CUDA graph does, and then runs them or
// refuses the pass. Either way the logits must be those of the operations run as issued: the executor reads
// nothing before end_pass, and issues a refused pass again.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/executor.h"
#include "engine/forwarding_backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "test_models.h"

namespace pginfer {
namespace {

// Forwards to the CPU backend; the operations of an announced pass are queued and, at end_pass, run
// (refuse = false) or dropped (refuse = true, end_pass false). A read or write inside a pass is counted.
class DeferringBackend : public ForwardingBackend {
 public:
  DeferringBackend(Backend& inner, bool refuse) : ForwardingBackend(inner), refuse_(refuse) {}

  int passes = 0, refused = 0, ops_in_passes = 0, io_in_pass = 0;

  bool begin_pass(const PassShape& shape) override {
    EXPECT_FALSE(in_pass_) << "a pass announced inside another";
    EXPECT_NE(shape.owner, 0u);
    in_pass_ = true;
    ++passes;
    return true;
  }
  bool end_pass() override {
    EXPECT_TRUE(in_pass_) << "end_pass without begin_pass";
    in_pass_ = false;
    std::vector<std::function<void()>> ops;
    ops.swap(queued_);
    ops_in_passes += (int)ops.size();
    if (refuse_) {
      ++refused;
      return false;
    }
    for (auto& op : ops) op();
    return true;
  }

  void embed(const GgufTensor& table, const int32_t* ids, int64_t n_tokens, float* out) override {
    issue([=, this] { inner().embed(table, ids, n_tokens, out); });
  }
  void rms_norm(const float* x, const GgufTensor& w, float eps, int64_t n_tokens, int64_t dim, float* out) override {
    issue([=, this, &w] { inner().rms_norm(x, w, eps, n_tokens, dim, out); });
  }
  void matmul(const GgufTensor& w, const GgufTensor* bias, const float* x, int64_t n_tokens, float* y) override {
    issue([=, this, &w] { inner().matmul(w, bias, x, n_tokens, y); });
  }
  void rope(float* x, const int32_t* pos, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
            const RopeParams& p) override {
    issue([=, this] { inner().rope(x, pos, n_tokens, n_heads, head_dim, p); });
  }
  void attention(KvCache& cache, int64_t layer, const float* q, const float* k, const float* v, const int32_t* pos,
                 int64_t n_tokens, const AttentionParams& p, float* out) override {
    issue([=, this, &cache] { inner().attention(cache, layer, q, k, v, pos, n_tokens, p, out); });
  }
  void attention_batch(std::span<const AttentionChunk> chunks, int64_t layer, const float* q, const float* k,
                       const float* v, const int32_t* pos, const AttentionParams& p, float* out) override {
    // The chunks are copied: a recording keeps what it needs of its arguments.
    std::vector<AttentionChunk> copy(chunks.begin(), chunks.end());
    issue([=, this] { inner().attention_batch(copy, layer, q, k, v, pos, p, out); });
  }
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    issue([=, this] { inner().swiglu(gate, up, n, out); });
  }
  void add(const float* a, const float* b, int64_t n, float* out) override {
    issue([=, this] { inner().add(a, b, n, out); });
  }
  void read(const float* src, int64_t n, float* host_dst) override {
    io_in_pass += in_pass_;
    inner().read(src, n, host_dst);
  }
  void write(const float* host_src, int64_t n, float* dst) override {
    io_in_pass += in_pass_;
    inner().write(host_src, n, dst);
  }

 private:
  void issue(std::function<void()> op) {
    if (in_pass_) {
      queued_.push_back(std::move(op));
    } else {
      op();
    }
  }

  bool refuse_;
  bool in_pass_ = false;
  std::vector<std::function<void()>> queued_;
};

// The tiny synthetic model of `type` and a CPU backend prepared for it (a null model on failure).
std::pair<std::unique_ptr<Model>, std::unique_ptr<Backend>> tiny_on_cpu(TensorType type) {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> cpu = make_cpu_backend({2});
  EXPECT_TRUE(Model::load(testing::synthetic_model("tiny", type), &model).ok());
  if (model != nullptr) EXPECT_TRUE(cpu->prepare(*model).ok());
  return {std::move(model), std::move(cpu)};
}

// Logits of three sequences decoded together for 4 steps after their prompts (one executor, three caches),
// every token's logits for the first sequence's prompt, on `backend`.
std::vector<std::vector<float>> batched_logits(const Model& model, Backend& backend) {
  const int64_t V = model.config().n_vocab;
  std::unique_ptr<Executor> executor;
  EXPECT_TRUE(Executor::create(model, backend, 32, &executor).ok());
  std::vector<std::unique_ptr<Session>> sessions(3);
  for (auto& s : sessions) EXPECT_TRUE(Session::create(model, backend, 64, &s).ok());
  std::vector<std::vector<int32_t>> in = {{1, 2, 3, 4, 5}, {7, 8, 9}, {11, 12, 13, 14, 15, 16, 17}};
  std::vector<std::vector<float>> out;
  for (int step = 0; step < 5; ++step) {
    std::vector<std::vector<float>> logits(3);
    std::vector<SequenceChunk> chunks(3);
    for (size_t s = 0; s < 3; ++s) {
      const bool all = step == 0 && s == 0;
      logits[s].resize((all ? in[s].size() : 1) * V);
      chunks[s].kv = &sessions[s]->kv();
      chunks[s].start = sessions[s]->n_past();
      chunks[s].ids = in[s];
      chunks[s].logits = logits[s].data();
      chunks[s].all_logits = all;
    }
    const Status st = executor->forward(chunks);
    EXPECT_TRUE(st.ok()) << st.message();
    for (size_t s = 0; s < 3; ++s) {
      sessions[s]->advance((int64_t)in[s].size());
      in[s] = {(int32_t)((step * 31 + (int)s * 7 + 3) % V)};
      out.push_back(logits[s]);
    }
  }
  return out;
}

TEST(Executor, DeferredPassesGiveTheLogitsOfOperationsRunAsIssued) {
  // Q8_0: logit rows grouped into one product (one pass, announced); F32: one row per product, so the passes
  // with several rows are not announced (their rows are read between products).
  for (TensorType type : {TensorType::Q8_0, TensorType::F32}) {
    auto [model, cpu] = tiny_on_cpu(type);
    ASSERT_NE(model, nullptr);
    const std::vector<std::vector<float>> want = batched_logits(*model, *cpu);
    for (bool refuse : {false, true}) {
      DeferringBackend deferring(*cpu, refuse);
      const std::vector<std::vector<float>> got = batched_logits(*model, deferring);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << type_name(type) << " row " << i;
      EXPECT_EQ(deferring.io_in_pass, 0) << "a read or write between begin_pass and end_pass";
      // Q8_0: every pass is announced; F32: none, since every pass here has several rows of logits.
      EXPECT_EQ(deferring.passes, type == TensorType::Q8_0 ? 5 : 0) << type_name(type);
      EXPECT_EQ(deferring.refused, refuse ? deferring.passes : 0);
      if (deferring.passes > 0) {
        EXPECT_GT(deferring.ops_in_passes, 10 * deferring.passes);
      }
    }
  }
}

// A pass of one sequence with one row of logits is announced whatever the output type (a Session's decoding).
TEST(Executor, OneRowPassesAreAnnounced) {
  auto [model, cpu] = tiny_on_cpu(TensorType::F32);
  ASSERT_NE(model, nullptr);
  DeferringBackend deferring(*cpu, false);
  std::unique_ptr<Session> plain, deferred;
  ASSERT_TRUE(Session::create(*model, *cpu, 32, &plain).ok());
  ASSERT_TRUE(Session::create(*model, deferring, 32, &deferred).ok());
  std::vector<float> a, b;
  std::vector<int32_t> in = {3, 1, 4, 1, 5};
  for (int step = 0; step < 4; ++step) {
    ASSERT_TRUE(plain->eval(in, false, &a).ok());
    ASSERT_TRUE(deferred->eval(in, false, &b).ok());
    EXPECT_EQ(a, b) << "step " << step;
    in = {(int32_t)(step + 9)};
  }
  EXPECT_EQ(deferring.passes, 4);
  EXPECT_EQ(deferring.io_in_pass, 0);
}

// Forwards to the CPU backend and answers argmax_rows itself (reading the rows), counting calls and rows.
class ArgmaxBackend : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  int calls = 0, rows = 0;
  bool argmax_rows(const float* src, int64_t n_rows, int64_t n_vocab, int32_t* host_ids) override {
    ++calls;
    rows += (int)n_rows;
    std::vector<float> host(n_rows * n_vocab);
    read(src, n_rows * n_vocab, host.data());
    for (int64_t r = 0; r < n_rows; ++r) {
      host_ids[r] = argmax(std::span<const float>(host.data() + r * n_vocab, n_vocab));
    }
    return true;
  }
};

// Chunks that ask for the argmax of their last token's logits get the argmax of the logits the same chunks give
// (three sequences, two asking for the argmax around one asking for logits), from the backend's argmax_rows when it
// has one (in runs of consecutive rows), else from rows read back. Q8_0: the rows in one product; F32: one each.
TEST(Executor, ArgmaxRowsGiveTheArgmaxOfTheLogits) {
  for (TensorType type : {TensorType::Q8_0, TensorType::F32}) {
    auto [model, cpu] = tiny_on_cpu(type);
    ASSERT_NE(model, nullptr);
    ArgmaxBackend with_argmax(*cpu);
    const int64_t V = model->config().n_vocab;
    const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4, 5, 6, 7}, {8, 9}};
    // Each chunk's last logits, then the argmax chunks, on `backend`.
    auto run = [&](Backend& backend, bool want_argmax) {
      std::unique_ptr<Executor> executor;
      EXPECT_TRUE(Executor::create(*model, backend, 16, &executor).ok());
      std::vector<std::unique_ptr<Session>> sessions(3);
      std::vector<SequenceChunk> chunks(3);
      std::vector<std::vector<float>> logits(3, std::vector<float>(V));
      std::vector<int32_t> best(3, -1);
      for (size_t s = 0; s < 3; ++s) {
        EXPECT_TRUE(Session::create(*model, backend, 16, &sessions[s]).ok());
        chunks[s].kv = &sessions[s]->kv();
        chunks[s].ids = prompts[s];
        if (want_argmax && s != 1) {
          chunks[s].argmax = &best[s];
        } else {
          chunks[s].logits = logits[s].data();
        }
      }
      EXPECT_TRUE(executor->forward(chunks).ok());
      return std::pair{logits, best};
    };
    const auto [logits, unused] = run(*cpu, false);
    for (Backend* backend : {(Backend*)cpu.get(), (Backend*)&with_argmax}) {
      const auto [got_logits, best] = run(*backend, true);
      EXPECT_EQ(best[0], argmax(logits[0])) << type_name(type);
      EXPECT_EQ(best[2], argmax(logits[2])) << type_name(type);
      EXPECT_EQ(got_logits[1], logits[1]) << type_name(type);
    }
    // Rows 0 and 2 are not consecutive: two runs of one row.
    EXPECT_EQ(with_argmax.calls, 2);
    EXPECT_EQ(with_argmax.rows, 2);
  }
}

}  // namespace
}  // namespace pginfer
