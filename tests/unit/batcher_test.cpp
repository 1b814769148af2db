// tests/unit/batcher_test.cpp: the serving loop (engine/batcher.h): sequences generated together, over the
// paged cache, with shared prefixes served from the prefix cache, and with preemption when the pool is
// small, give exactly the tokens each gives alone with its own contiguous cache (quantized weights round
// each token on its own); streaming, cancellation, the queue limit, requests longer than the pool.
#include <gtest/gtest.h>

#include <atomic>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/batcher.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "tests/unit/test_models.h"

namespace pginfer {
namespace {

struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<Vocab> vocab;
  std::unique_ptr<Backend> backend;

  Fixture() {
    EXPECT_TRUE(Model::load(testing::synthetic_model("tiny", TensorType::Q8_0), &model).ok());
    EXPECT_TRUE(Vocab::load(model->file(), &vocab).ok());
    backend = make_cpu_backend({2});
    EXPECT_TRUE(backend->prepare(*model).ok());
  }

  std::vector<int32_t> ids(const std::string& text) {
    std::vector<int32_t> out;
    EXPECT_TRUE(tokenize(*vocab, text, true, &out).ok());
    return out;
  }

  // What `prompt` gives alone, with generate() on its own session.
  GenerateResult alone(const std::vector<int32_t>& prompt, const GenerateOptions& o) {
    std::unique_ptr<Session> s;
    EXPECT_TRUE(Session::create(*model, *backend, (int64_t)prompt.size() + o.max_tokens, &s).ok());
    GenerateResult r;
    EXPECT_TRUE(generate(*s, vocab.get(), prompt, o, &r).ok());
    return r;
  }

  // A job of one sequence per prompt.
  std::shared_ptr<BatchJob> job(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
    auto j = std::make_shared<BatchJob>();
    for (const auto& p : prompts) {
      auto seq = std::make_unique<BatchSequence>();
      seq->prompt = p;
      seq->max_tokens = o.max_tokens;
      EXPECT_TRUE(Generation::create(vocab.get(), p, o, &seq->generation).ok());
      j->sequences.push_back(std::move(seq));
    }
    return j;
  }
};

void wait(BatchJob& j) {
  std::vector<std::string> ignored;
  while (!j.wait_for(std::chrono::milliseconds(50), &ignored)) {
  }
}

TEST(Batcher, SequencesTogetherGiveWhatEachGivesAlone) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 12;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 10; ++i) {
    // Prompts of different lengths, one long enough to be cut into several chunks by a small budget.
    std::string text = "Prompt " + std::to_string(i) + " says";
    for (int k = 0; k < i * 3; ++k) text += " more";
    prompts.push_back(f.ids(text));
  }
  std::unique_ptr<Batcher> b;
  Batcher::Options bo;
  bo.max_running = 4;  // fewer than the sequences: some wait and join later
  bo.max_tokens = 24;  // long prompts are chunked
  ASSERT_TRUE(Batcher::create(*f.model, *f.backend, bo, &b).ok());
  // Two jobs submitted from two threads at once, with different sampling (greedy, seeded).
  GenerateOptions sampled = o;
  sampled.sampling.temperature = 0.8f;
  sampled.sampling.top_k = 40;
  sampled.sampling.seed = 11;
  auto greedy_job = f.job(std::vector<std::vector<int32_t>>(prompts.begin(), prompts.begin() + 6), o);
  auto sampled_job = f.job(std::vector<std::vector<int32_t>>(prompts.begin() + 6, prompts.end()), sampled);
  std::thread t1([&] { ASSERT_TRUE(b->submit(greedy_job).ok()); });
  std::thread t2([&] { ASSERT_TRUE(b->submit(sampled_job).ok()); });
  t1.join();
  t2.join();
  wait(*greedy_job);
  wait(*sampled_job);
  ASSERT_TRUE(greedy_job->error().ok());
  for (size_t i = 0; i < 6; ++i) {
    const GenerateResult want = f.alone(prompts[i], o);
    EXPECT_EQ(greedy_job->sequences[i]->generation->result().ids, want.ids) << "prompt " << i;
    EXPECT_EQ(greedy_job->sequences[i]->generation->result().text, want.text) << "prompt " << i;
  }
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sampled_job->sequences[i]->generation->result().ids, f.alone(prompts[6 + i], sampled).ids)
        << "prompt " << 6 + i;
  }
  EXPECT_EQ(b->stats().requests.load(), 10);
  EXPECT_EQ(b->stats().running.load(), 0);
  EXPECT_EQ(b->stats().queued.load(), 0);
  // Planning is timed, and is part of the time in passes (each pass's microseconds are rounded down).
  EXPECT_GT(b->stats().schedule_ns.load(), 0);
  EXPECT_LE(b->stats().schedule_ns.load(), b->stats().busy_us.load() * 1000 + 1000000);
}

// Rows that share a long instruction: the prefix cache serves it after the first, the tokens stay exactly
// what each row gives alone; a pool too small for all at once preempts and recomputes, same tokens.
TEST(Batcher, SharedPrefixesAndPreemptionKeepTheTokens) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 30;  // rows grow by two blocks while decoding
  std::string instruction = "Classify the following ticket as billing, access or feature.";
  for (int i = 0; i < 4; ++i) instruction += " Answer with one word only, please.";
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back(f.ids(instruction + " Ticket " + std::to_string(i) + ": it broke"));
  for (int64_t kv_blocks : {int64_t{256}, int64_t{10}}) {  // roomy, then too small for 7 rows at once
    std::unique_ptr<Batcher> b;
    Batcher::Options bo;
    bo.kv_blocks = kv_blocks;
    ASSERT_TRUE(Batcher::create(*f.model, *f.backend, bo, &b).ok());
    auto first = f.job({prompts[0]}, o);  // fills the cache
    ASSERT_TRUE(b->submit(first).ok());
    wait(*first);
    auto rest = f.job(std::vector<std::vector<int32_t>>(prompts.begin() + 1, prompts.end()), o);
    ASSERT_TRUE(b->submit(rest).ok());
    wait(*rest);
    ASSERT_TRUE(rest->error().ok()) << rest->error().message();
    EXPECT_EQ(first->sequences[0]->generation->result().ids, f.alone(prompts[0], o).ids);
    for (size_t i = 0; i < rest->sequences.size(); ++i) {
      EXPECT_EQ(rest->sequences[i]->generation->result().ids, f.alone(prompts[i + 1], o).ids)
          << "row " << i + 1 << " with " << kv_blocks << " blocks";
    }
    EXPECT_GE(b->stats().prefix_hit_tokens.load(), 7 * 48) << "the shared instruction came from the cache";
    if (kv_blocks == 10) {
      EXPECT_GT(b->stats().preemptions.load(), 0) << "the small pool had to preempt";
    }
  }
}

// Rows admitted in the same step share blocks that the first of them writes in that very pass: the later
// rows must read them after they are written (chunk order within the pass), and give what they give alone.
TEST(Batcher, RowsSharingAPrefixInOnePassGiveTheirOwnTokens) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 6;
  std::string instruction = "Classify the following ticket as billing, access or feature.";
  for (int i = 0; i < 4; ++i) instruction += " Answer with one word only, please.";
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(f.ids(instruction + " Ticket " + std::to_string(i) + ": it broke"));
  std::unique_ptr<Batcher> b;
  ASSERT_TRUE(Batcher::create(*f.model, *f.backend, Batcher::Options(), &b).ok());
  auto job = f.job(prompts, o);  // all six at once, on an empty cache
  ASSERT_TRUE(b->submit(job).ok());
  wait(*job);
  ASSERT_TRUE(job->error().ok());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(job->sequences[i]->generation->result().ids, f.alone(prompts[i], o).ids) << "row " << i;
  }
  EXPECT_GE(b->stats().prefix_hit_tokens.load(), 5 * 48) << "the later rows shared the first row's blocks";
}

TEST(Batcher, RefusesRequestsLongerThanThePool) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 100;
  std::unique_ptr<Batcher> b;
  Batcher::Options bo;
  bo.kv_blocks = 4;  // 64 positions
  ASSERT_TRUE(Batcher::create(*f.model, *f.backend, bo, &b).ok());
  const Status st = b->submit(f.job({f.ids("Hello")}, o));
  EXPECT_EQ(st.code(), StatusCode::OutOfMemory);
  EXPECT_NE(st.message().find("pool holds 64"), std::string::npos) << st.message();
}

// A pass that fails with DeviceLost (a GPU error, simulated) fails every job in it with that error and tells
// the owner once, so that the engine can restart its process.
TEST(Batcher, DeviceLostFailsTheJobsAndIsReportedOnce) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 4;
  std::atomic<int> reports{0};
  Batcher::Options bo;
  bo.simulate_device_lost = true;
  bo.on_device_lost = [&](const Status& st) {
    EXPECT_EQ(st.code(), StatusCode::DeviceLost);
    reports.fetch_add(1);
  };
  std::unique_ptr<Batcher> b;
  ASSERT_TRUE(Batcher::create(*f.model, *f.backend, bo, &b).ok());
  auto first = f.job({f.ids("One"), f.ids("Two")}, o);
  ASSERT_TRUE(b->submit(first).ok());
  wait(*first);
  auto second = f.job({f.ids("Three")}, o);
  ASSERT_TRUE(b->submit(second).ok());
  wait(*second);
  EXPECT_EQ(first->error().code(), StatusCode::DeviceLost);
  EXPECT_EQ(second->error().code(), StatusCode::DeviceLost);
  EXPECT_EQ(reports.load(), 1);
}

TEST(Batcher, StreamsAndCancels) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 200;
  std::unique_ptr<Batcher> b;
  ASSERT_TRUE(Batcher::create(*f.model, *f.backend, Batcher::Options(), &b).ok());
  auto j = std::make_shared<BatchJob>();
  auto seq = std::make_unique<BatchSequence>();
  seq->prompt = f.ids("Once upon a time");
  seq->max_tokens = o.max_tokens;
  GenerateOptions so = o;
  so.on_text = [jp = j.get()](std::string_view piece) { return jp->stream(piece); };
  ASSERT_TRUE(Generation::create(f.vocab.get(), seq->prompt, so, &seq->generation).ok());
  j->sequences.push_back(std::move(seq));
  ASSERT_TRUE(b->submit(j).ok());
  std::vector<std::string> streamed;
  while (streamed.size() < 5 && !j->wait_for(std::chrono::milliseconds(50), &streamed)) {
  }
  EXPECT_GE(streamed.size(), 5u) << "one element per piece";
  j->cancel();
  wait(*j);
  EXPECT_EQ(j->sequences[0]->generation->result().finish, FinishReason::Cancelled);
  EXPECT_LT(j->sequences[0]->generation->result().ids.size(), 200u);
  for (int i = 0; i < 100 && b->stats().blocks_used.load() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(b->stats().blocks_used.load(), 0) << "the blocks are released when the sequence ends";
}

TEST(Batcher, RefusesWhenTheQueueIsFull) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 50;
  std::unique_ptr<Batcher> b;
  Batcher::Options bo;
  bo.max_running = 1;
  bo.max_queue = 2;
  ASSERT_TRUE(Batcher::create(*f.model, *f.backend, bo, &b).ok());
  std::vector<std::shared_ptr<BatchJob>> jobs;
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back(f.job({f.ids("Hello")}, o));
    const Status st = b->submit(jobs.back());
    if (!st.ok()) {
      EXPECT_EQ(st.code(), StatusCode::Busy);
      ++refused;
      jobs.pop_back();
    }
  }
  EXPECT_GE(refused, 3);  // one may have started already, two wait, the rest are refused
  for (auto& j : jobs) j->cancel();
  for (auto& j : jobs) wait(*j);
}

}  // namespace
}  // namespace pginfer
