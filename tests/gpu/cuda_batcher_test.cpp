// tests/gpu/cuda_batcher_test.cpp: the serving loop (engine/batcher.h) on the CUDA backend, over its paged KV
// pool in device memory: greedy requests running together (prompt chunks and decode tokens in the same
// passes, one request sharing a prefix with another, a pool small enough to preempt) give the tokens each
// gives alone on the GPU, and agree with the CPU backend. F32 weights: the products of a pass then differ from
// those of a request alone only in summation order (cuBLAS for passes of 8 tokens or more, the matrix-vector
// kernels below), far below any gap between the top two logits. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "engine/batcher.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/vocab.h"
#include "gpu_test_util.h"
#include "test_models.h"

namespace pginfer {
namespace {

using testing::greedy_tokens;
using testing::prompt_ids;
using testing::synthetic_model;
using testing::teacher_forced_agreement;

constexpr int kNewTokens = 32;

// Greedy options of every request: kNewTokens tokens, whatever they are.
GenerateOptions greedy_options() {
  GenerateOptions o;
  o.max_tokens = kNewTokens;
  o.stop_at_eog = false;
  return o;
}

// A job of one sequence per prompt; request i generates kNewTokens - i * shorten_by tokens.
std::shared_ptr<BatchJob> make_job(const Vocab& vocab, const std::vector<std::vector<int32_t>>& prompts,
                                   int shorten_by = 0) {
  auto job = std::make_shared<BatchJob>();
  for (const auto& prompt : prompts) {
    auto seq = std::make_unique<BatchSequence>();
    GenerateOptions o = greedy_options();
    o.max_tokens -= (int64_t)job->sequences.size() * shorten_by;
    seq->prompt = prompt;
    seq->max_tokens = o.max_tokens;
    EXPECT_TRUE(Generation::create(&vocab, prompt, o, &seq->generation).ok());
    job->sequences.push_back(std::move(seq));
  }
  return job;
}

void wait(BatchJob& job) {
  std::vector<std::string> ignored;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!job.wait_for(std::chrono::milliseconds(50), &ignored)) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the job did not finish in 120 s";
      job.cancel();
    }
  }
}

TEST(CudaBatcher, ConcurrentRequestsGiveTheirTokensAloneAndAgreeWithCpu) {
  std::unique_ptr<Backend> gpu;
  PGI_REQUIRE_CUDA(gpu);
  std::unique_ptr<Model> model;
  ASSERT_TRUE(Model::load(synthetic_model("tiny", TensorType::F32), &model).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::load(model->file(), &vocab).ok());
  Status st = gpu->prepare(*model);
  ASSERT_TRUE(st.ok()) << st.message();
  std::unique_ptr<Backend> cpu = make_cpu_backend({2});
  ASSERT_TRUE(cpu->prepare(*model).ok());
  const int64_t V = model->config().n_vocab;

  // Prompts of several lengths (the longest cut into chunks by the token budget); the second shares the
  // first's first 36 tokens (two full blocks of 16 for the prefix cache); the last, submitted after the
  // others end, shares them too and must find them cached.
  std::vector<int32_t> first = prompt_ids(40, V, 1);
  std::vector<int32_t> second(first.begin(), first.begin() + 36);
  for (int32_t id : prompt_ids(5, V, 2)) second.push_back(id);
  std::vector<int32_t> late(first.begin(), first.begin() + 33);
  for (int32_t id : prompt_ids(3, V, 6)) late.push_back(id);
  const std::vector<std::vector<int32_t>> prompts = {first, second, prompt_ids(7, V, 3), prompt_ids(23, V, 4),
                                                     prompt_ids(12, V, 5), late};

  // Each alone on the GPU, one sequence with its own contiguous cache.
  std::vector<std::vector<int32_t>> alone;
  for (const auto& prompt : prompts) alone.push_back(greedy_tokens(*model, *gpu, prompt, kNewTokens));

  for (int64_t kv_blocks : {int64_t{256}, int64_t{12}}) {  // roomy, then too small for all at once: preemption
    std::unique_ptr<Batcher> b;
    Batcher::Options bo;
    bo.max_running = 8;
    bo.max_tokens = 32;  // the 40-token prompt is cut into chunks; decode tokens share passes with prompt chunks
    bo.kv_blocks = kv_blocks;
    st = Batcher::create(*model, *gpu, bo, &b);
    ASSERT_TRUE(st.ok()) << st.message();
    // Two jobs submitted from two threads at once, then one more once they are done.
    auto one = make_job(*vocab, {prompts[0], prompts[2]});
    auto two = make_job(*vocab, {prompts[1], prompts[3], prompts[4]});
    std::thread t1([&] { EXPECT_TRUE(b->submit(one).ok()); });
    std::thread t2([&] { EXPECT_TRUE(b->submit(two).ok()); });
    t1.join();
    t2.join();
    wait(*one);
    wait(*two);
    ASSERT_TRUE(one->error().ok()) << one->error().message();
    ASSERT_TRUE(two->error().ok()) << two->error().message();
    auto three = make_job(*vocab, {prompts[5]});
    ASSERT_TRUE(b->submit(three).ok());
    wait(*three);
    ASSERT_TRUE(three->error().ok()) << three->error().message();

    const std::vector<const BatchSequence*> seqs = {one->sequences[0].get(), two->sequences[0].get(),
                                                    one->sequences[1].get(), two->sequences[1].get(),
                                                    two->sequences[2].get(), three->sequences[0].get()};
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<int32_t>& got = seqs[i]->generation->result().ids;
      EXPECT_EQ(got, alone[i]) << "request " << i << " with " << kv_blocks << " blocks";
      const int agree = teacher_forced_agreement(*model, *cpu, prompts[i], got);
      std::printf("[ AGREE    ] request %zu (%zu prompt tokens, %lld blocks): CPU agrees on %2d/%d tokens\n", i,
                  prompts[i].size(), (long long)kv_blocks, agree, kNewTokens);
      EXPECT_GE(agree, kNewTokens * 9 / 10) << "request " << i;
    }
    if (kv_blocks == 256) {  // nothing was evicted: the last request finds the shared prefix cached
      EXPECT_GE(b->stats().prefix_hit_tokens.load(), 32);
    } else {
      EXPECT_GT(b->stats().preemptions.load(), 0) << "the small pool had to preempt";
    }
    EXPECT_TRUE(gpu->health().ok()) << gpu->health().message();
  }
}

// The serving loop's passes replayed from CUDA graphs give the tokens of the same passes launched kernel by
// kernel: eight requests in one job (one schedule), decoding in passes of 8 down to 1 sequences as they end.
TEST(CudaBatcher, GraphReplaysGiveTheTokensOfLaunchedKernels) {
  std::unique_ptr<Backend> graphs, launches;
  PGI_REQUIRE_CUDA(graphs);
  std::string why;
  launches = testing::cuda_backend_or_null(&why, testing::without_graphs());
  ASSERT_NE(launches, nullptr) << why;
  std::unique_ptr<Model> model;
  ASSERT_TRUE(Model::load(synthetic_model("tiny-qwen2", TensorType::Q8_0), &model).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::load(model->file(), &vocab).ok());
  const int64_t V = model->config().n_vocab;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back(prompt_ids(5 + 3 * i, V, 10 + i));
  std::vector<std::vector<int32_t>> tokens[2];
  for (int g = 0; g < 2; ++g) {
    Backend& backend = g == 0 ? *graphs : *launches;
    ASSERT_TRUE(backend.prepare(*model).ok());
    std::unique_ptr<Batcher> b;
    Batcher::Options bo;
    bo.max_running = 8;
    bo.kv_blocks = 64;
    Status st = Batcher::create(*model, backend, bo, &b);
    ASSERT_TRUE(st.ok()) << st.message();
    auto job = make_job(*vocab, prompts, 2);  // requests end at different lengths: the passes shrink as they do
    ASSERT_TRUE(b->submit(job).ok());
    wait(*job);
    ASSERT_TRUE(job->error().ok()) << job->error().message();
    for (const auto& seq : job->sequences) tokens[g].push_back(seq->generation->result().ids);
    EXPECT_TRUE(backend.health().ok()) << backend.health().message();
  }
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(tokens[0][i], tokens[1][i]) << "request " << i;
  const PassCounts counts = graphs->pass_counts();
  std::printf("[ GRAPHS   ] serving: captured %lld, replayed %lld, issued again %lld\n", (long long)counts.captured,
              (long long)counts.replayed, (long long)counts.reissued);
  EXPECT_GT(counts.captured, 0);
  EXPECT_GT(counts.replayed, counts.captured);
  EXPECT_EQ(counts.reissued, 0);
  EXPECT_EQ(launches->pass_counts().replayed, 0);
}

}  // namespace
}  // namespace pginfer
