// tests/unit/scheduler_test.cpp: continuous batching without a model. A fake paged executor writes every
// scheduled token into its KV slot (through the block table), then reads each sampled sequence back
// through the table and "samples" a hash of it, so shared and recomputed blocks are checked for content.
// Covers the token budget, chunked prefill beside decodes, max running, fairness, preemption and
// recomputation, stop tokens, aborts, failed steps, rejection, and a randomized stress run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "engine/scheduler.h"

namespace pginfer {
namespace {

constexpr int32_t kVocab = 50;

// The fake model: the next token is a function of the whole sequence.
int32_t next_token(std::span<const int32_t> seq) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : seq) h = (h ^ (uint64_t)(uint32_t)t) * 1099511628211ull;
  return (int32_t)((h >> 17) % kVocab);
}

// What generation must produce, computed sequentially.
std::vector<int32_t> reference_output(std::vector<int32_t> seq, int32_t max_new, const std::vector<int32_t>& stops) {
  std::vector<int32_t> out;
  while ((int32_t)out.size() < max_new) {
    int32_t t = next_token(seq);
    seq.push_back(t);
    out.push_back(t);
    if (std::find(stops.begin(), stops.end(), t) != stops.end()) break;
  }
  return out;
}

std::vector<int32_t> seq(int32_t n, int32_t start) {
  std::vector<int32_t> t((size_t)n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

struct Harness {
  Harness(int32_t blocks, int32_t bs, SchedulerOptions opt) : block_size(bs) {
    EXPECT_TRUE(BlockPool::create(blocks, bs, &pool).ok());
    kv = std::make_unique<KvCacheManager>(pool.get(), 1);
    EXPECT_TRUE(Scheduler::create(kv.get(), opt, &sched).ok());
    slots.assign((size_t)blocks * (size_t)bs, -1);
    options = opt;
  }

  Status add(RequestId id, std::vector<int32_t> prompt, int32_t max_new, uint64_t session = 0,
             std::vector<int32_t> stops = {}, bool caching = true) {
    SchedRequestSpec s;
    s.id = id;
    s.session_id = session;
    s.prompt = prompt;
    s.max_new_tokens = max_new;
    s.stop_tokens = stops;
    s.prefix_caching = caching;
    Status st = sched->add_request(std::move(s));
    if (st.ok()) expected[id] = reference_output(prompt, max_new, stops);
    return st;
  }

  // Runs the plan like a batched forward pass: all K/V writes first, then the reads.
  std::vector<StepOutput> execute(const StepPlan& plan) {
    for (const ScheduledChunk& c : plan.chunks) {
      EXPECT_GE((int64_t)c.block_table.size() * block_size, (int64_t)c.start_pos + (int64_t)c.tokens.size());
      for (size_t i = 0; i < c.tokens.size(); ++i)
        slots[(size_t)slot_of(c.block_table, c.start_pos + (int32_t)i, block_size)] = c.tokens[i];
    }
    std::vector<StepOutput> outs;
    for (const ScheduledChunk& c : plan.chunks) {
      const int32_t end = c.start_pos + (int32_t)c.tokens.size();
      std::vector<int32_t> read((size_t)end);
      for (int32_t p = 0; p < end; ++p) read[(size_t)p] = slots[(size_t)slot_of(c.block_table, p, block_size)];
      auto truth = sched->tokens_of(c.id);
      EXPECT_TRUE(std::equal(read.begin(), read.end(), truth.begin())) << "request " << c.id << " read wrong K/V";
      if (c.sample) outs.push_back({c.id, next_token(read), false});
    }
    return outs;
  }

  // One step: plan, check, execute, apply. Returns the plan.
  StepPlan run_step(StepResult* result = nullptr) {
    StepPlan plan;
    EXPECT_TRUE(sched->step(&plan).ok());
    EXPECT_LE(plan.num_tokens, options.max_num_batched_tokens);
    EXPECT_LE(sched->num_running(), options.max_num_seqs);
    auto outs = execute(plan);
    StepResult r;
    EXPECT_TRUE(sched->update_from_output(plan, outs, &r).ok());
    for (auto& f : r.finished) finished[f.id] = f;
    if (result) *result = r;
    EXPECT_TRUE(sched->check_invariants().ok()) << sched->check_invariants().message();
    EXPECT_TRUE(pool->check_invariants().ok()) << pool->check_invariants().message();
    return plan;
  }

  void run_until_idle(int max_steps = 10000) {
    for (int i = 0; i < max_steps && !sched->idle(); ++i) run_step();
    EXPECT_TRUE(sched->idle());
  }

  int32_t block_size;
  SchedulerOptions options;
  std::unique_ptr<BlockPool> pool;
  std::unique_ptr<KvCacheManager> kv;
  std::unique_ptr<Scheduler> sched;
  std::vector<int32_t> slots;
  std::map<RequestId, std::vector<int32_t>> expected;
  std::map<RequestId, FinishedRequest> finished;
};

const ScheduledChunk* chunk_of(const StepPlan& p, RequestId id) {
  for (const auto& c : p.chunks)
    if (c.id == id) return &c;
  return nullptr;
}

TEST(Scheduler, CreateRejectsBadOptions) {
  std::unique_ptr<BlockPool> pool;
  ASSERT_TRUE(BlockPool::create(4, 4, &pool).ok());
  KvCacheManager kv(pool.get(), 0);
  std::unique_ptr<Scheduler> s;
  EXPECT_EQ(Scheduler::create(&kv, {.max_num_batched_tokens = 0}, &s).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(Scheduler::create(&kv, {.max_num_seqs = 0}, &s).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(Scheduler::create(&kv, {.max_prefill_chunk = -1}, &s).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(Scheduler::create(nullptr, {}, &s).code(), StatusCode::InvalidArgument);
}

TEST(Scheduler, RejectsBadAndOversizeRequests) {
  Harness h(4, 4, {});  // 16 slots
  EXPECT_EQ(h.add(1, {}, 4).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(h.add(2, seq(3, 0), 0).code(), StatusCode::InvalidArgument);
  Status big = h.add(3, seq(10, 0), 8);  // 17 slots needed
  EXPECT_EQ(big.code(), StatusCode::InvalidArgument);
  EXPECT_NE(big.message().find("17 kv cache slots"), std::string::npos) << big.message();
  EXPECT_TRUE(h.add(4, seq(10, 0), 7).ok());  // exactly 16
  EXPECT_EQ(h.add(4, seq(2, 0), 1).code(), StatusCode::InvalidArgument);  // duplicate id
  EXPECT_EQ(h.sched->stats().rejected, 3);
  h.run_until_idle();
  EXPECT_EQ(h.finished[4].output, h.expected[4]);
  EXPECT_EQ(h.finished[4].reason, FinishCause::Length);
}

TEST(Scheduler, LongPromptIsChunkedWithinTheBudget) {
  Harness h(32, 4, {.max_num_batched_tokens = 8});
  ASSERT_TRUE(h.add(1, seq(20, 0), 3).ok());
  StepPlan p1 = h.run_step();
  ASSERT_EQ(p1.chunks.size(), 1u);
  EXPECT_EQ(p1.chunks[0].tokens.size(), 8u);
  EXPECT_FALSE(p1.chunks[0].sample);
  StepPlan p2 = h.run_step();
  EXPECT_EQ(p2.chunks[0].start_pos, 8);
  EXPECT_EQ(p2.chunks[0].tokens.size(), 8u);
  StepPlan p3 = h.run_step();
  EXPECT_EQ(p3.chunks[0].tokens.size(), 4u);
  EXPECT_TRUE(p3.chunks[0].sample);
  StepPlan p4 = h.run_step();
  EXPECT_EQ(p4.chunks[0].tokens.size(), 1u);  // a decode
  EXPECT_FALSE(p4.chunks[0].is_prefill);
  h.run_until_idle();
  EXPECT_EQ(h.finished[1].output, h.expected[1]);
  EXPECT_EQ(h.pool->num_used(), 0);
}

TEST(Scheduler, DecodesKeepGoingWhileALongPromptIsChunked) {
  Harness h(64, 4, {.max_num_batched_tokens = 6});
  ASSERT_TRUE(h.add(1, seq(3, 0), 20).ok());
  h.run_step();  // prefill of 1
  ASSERT_TRUE(h.add(2, seq(40, 100), 2).ok());
  int steps_with_both = 0;
  for (int i = 0; i < 8; ++i) {
    StepPlan p = h.run_step();
    const ScheduledChunk* a = chunk_of(p, 1);
    ASSERT_NE(a, nullptr) << "the running decode was stalled at step " << i;
    EXPECT_EQ(a->tokens.size(), 1u);
    EXPECT_EQ(p.chunks.front().id, 1u);  // decodes come first
    if (const ScheduledChunk* b = chunk_of(p, 2); b && b->is_prefill) {
      EXPECT_EQ(b->tokens.size(), 5u);  // what is left of the budget
      ++steps_with_both;
    }
  }
  EXPECT_EQ(steps_with_both, 8);
  h.run_until_idle();
  EXPECT_EQ(h.finished[1].output, h.expected[1]);
  EXPECT_EQ(h.finished[2].output, h.expected[2]);
}

TEST(Scheduler, MaxPrefillChunkCapsOneRequest) {
  Harness h(64, 4, {.max_num_batched_tokens = 64, .max_prefill_chunk = 10});
  ASSERT_TRUE(h.add(1, seq(25, 0), 1).ok());
  ASSERT_TRUE(h.add(2, seq(25, 500), 1).ok());
  StepPlan p = h.run_step();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].tokens.size(), 10u);
  EXPECT_EQ(p.chunks[1].tokens.size(), 10u);
  h.run_until_idle();
}

TEST(Scheduler, MaxRunningSequences) {
  Harness h(64, 4, {.max_num_seqs = 2});
  ASSERT_TRUE(h.add(1, seq(4, 0), 3).ok());
  ASSERT_TRUE(h.add(2, seq(4, 10), 6).ok());
  ASSERT_TRUE(h.add(3, seq(4, 20), 3).ok());
  h.run_step();
  EXPECT_EQ(h.sched->running_ids(), (std::vector<RequestId>{1, 2}));
  EXPECT_EQ(h.sched->waiting_ids(), (std::vector<RequestId>{3}));
  h.run_step();
  h.run_step();  // request 1 finishes (3 tokens)
  EXPECT_TRUE(h.finished.count(1));
  StepPlan p = h.run_step();
  EXPECT_NE(chunk_of(p, 3), nullptr);  // joins at the next step
  h.run_until_idle();
  for (RequestId id : {1, 2, 3}) EXPECT_EQ(h.finished[id].output, h.expected[id]);
}

TEST(Scheduler, FirstComeFirstServedWithinASessionAndTurnsAcrossSessions) {
  Harness h(64, 4, {.max_num_seqs = 2});
  // Session 1 submits four requests, then session 2 one.
  for (RequestId id = 1; id <= 4; ++id) ASSERT_TRUE(h.add(id, seq(4, (int32_t)id * 10), 2, 1).ok());
  ASSERT_TRUE(h.add(5, seq(4, 50), 4, 2).ok());
  h.run_step();
  EXPECT_EQ(h.sched->running_ids(), (std::vector<RequestId>{1, 5}));  // session 2 is not shut out
  std::vector<RequestId> start_order;
  std::map<RequestId, bool> seen;
  for (int i = 0; i < 40 && !h.sched->idle(); ++i) {
    for (RequestId id : h.sched->running_ids())
      if (!seen[id]) {
        seen[id] = true;
        start_order.push_back(id);
      }
    h.run_step();
  }
  EXPECT_EQ(start_order, (std::vector<RequestId>{1, 5, 2, 3, 4}));  // session 1 in its own order
  for (RequestId id = 1; id <= 5; ++id) EXPECT_EQ(h.finished[id].output, h.expected[id]);
}

TEST(Scheduler, PreemptsTheNewestUnderPoolPressureAndRecomputes) {
  // 6 blocks of 4 = 24 slots; each request grows to 8 + 11 = 19 positions (5 blocks): both cannot fit.
  Harness h(6, 4, {});
  ASSERT_TRUE(h.add(1, seq(8, 0), 12).ok());
  ASSERT_TRUE(h.add(2, seq(8, 100), 12).ok());
  bool preempted = false;
  for (int i = 0; i < 200 && !h.sched->idle(); ++i) {
    StepPlan p = h.run_step();
    if (!p.preempted.empty()) {
      EXPECT_EQ(p.preempted, (std::vector<RequestId>{2}));  // the most recently started
      EXPECT_EQ(h.sched->waiting_ids(), (std::vector<RequestId>{2}));
      EXPECT_EQ(h.kv->block_table(2).size(), 0u);
      EXPECT_NE(chunk_of(p, 1), nullptr);  // the older request keeps going
      preempted = true;
    }
  }
  EXPECT_TRUE(preempted);
  EXPECT_GE(h.sched->stats().preemptions, 1);
  EXPECT_EQ(h.finished[1].output, h.expected[1]);
  EXPECT_EQ(h.finished[2].output, h.expected[2]);  // recomputed: same tokens as uninterrupted
  EXPECT_EQ(h.pool->num_used(), 0);
}

TEST(Scheduler, PreemptedRequestReusesItsCachedPrefix) {
  // Request 2's published full blocks survive its preemption while nobody needs them.
  Harness h(10, 4, {});
  ASSERT_TRUE(h.add(1, seq(4, 0), 30).ok());   // grows to 33 positions: 9 blocks
  h.run_step();
  ASSERT_TRUE(h.add(2, seq(13, 100), 20).ok());  // grows to 32 positions: 8 blocks
  h.run_step();
  int32_t restart_pos = -1;
  for (int i = 0; i < 200 && !h.sched->idle(); ++i) {
    StepPlan p = h.run_step();
    if (!p.preempted.empty()) {
      EXPECT_EQ(p.preempted, (std::vector<RequestId>{2}));
    }
    if (const ScheduledChunk* c = chunk_of(p, 2); c && c->is_prefill && h.sched->stats().preemptions > 0 &&
                                                   restart_pos < 0)
      restart_pos = c->start_pos;
  }
  EXPECT_EQ(h.finished[1].output, h.expected[1]);
  EXPECT_EQ(h.finished[2].output, h.expected[2]);
  EXPECT_GE(h.sched->stats().preemptions, 1);
  EXPECT_GT(restart_pos, 0) << "recomputation should start after the cached prefix";
}

TEST(Scheduler, StopTokenMaxTokensAndCallerFinish) {
  Harness h(64, 4, {});
  const auto prompt = seq(5, 0);
  const auto ref = reference_output(prompt, 10, {});
  ASSERT_TRUE(h.add(1, prompt, 10, 0, {ref[2]}).ok());  // stops at its third token
  ASSERT_TRUE(h.add(2, seq(5, 200), 4).ok());
  h.run_until_idle();
  EXPECT_EQ(h.finished[1].reason, FinishCause::StopToken);
  EXPECT_EQ(h.finished[1].output, h.expected[1]);
  EXPECT_LE(h.finished[1].output.size(), 3u);
  EXPECT_EQ(h.finished[2].reason, FinishCause::Length);
  EXPECT_EQ(h.finished[2].output.size(), 4u);
  EXPECT_EQ(h.pool->num_used(), 0);

  ASSERT_TRUE(h.add(3, seq(5, 300), 10).ok());
  StepPlan p;
  ASSERT_TRUE(h.sched->step(&p).ok());
  auto outs = h.execute(p);
  ASSERT_EQ(outs.size(), 1u);
  outs[0].finish = true;  // e.g. a stop string matched in the text
  StepResult r;
  ASSERT_TRUE(h.sched->update_from_output(p, outs, &r).ok());
  ASSERT_EQ(r.finished.size(), 1u);
  EXPECT_EQ(r.finished[0].reason, FinishCause::Caller);
  EXPECT_EQ(r.finished[0].output.size(), 1u);
  EXPECT_EQ(r.new_tokens.size(), 1u);
  EXPECT_TRUE(h.sched->idle());
}

TEST(Scheduler, AbortFreesBlocksAndIsSkippedByUpdate) {
  Harness h(64, 4, {});
  ASSERT_TRUE(h.add(1, seq(9, 0), 10).ok());
  ASSERT_TRUE(h.add(2, seq(9, 50), 10).ok());
  h.run_step();
  StepPlan p;
  ASSERT_TRUE(h.sched->step(&p).ok());
  auto outs = h.execute(p);
  ASSERT_TRUE(h.sched->abort_request(1).ok());  // while the step is in flight
  StepResult r;
  ASSERT_TRUE(h.sched->update_from_output(p, outs, &r).ok());
  EXPECT_EQ(r.new_tokens.size(), 1u);
  EXPECT_EQ(h.sched->running_ids(), (std::vector<RequestId>{2}));
  EXPECT_EQ(h.sched->abort_request(1).code(), StatusCode::NotFound);
  ASSERT_TRUE(h.add(3, seq(4, 0), 1).ok());
  ASSERT_TRUE(h.sched->abort_request(3).ok());  // a waiting one
  EXPECT_TRUE(h.sched->check_invariants().ok());
  h.run_until_idle();
  EXPECT_EQ(h.finished[2].output, h.expected[2]);
  EXPECT_EQ(h.pool->num_used(), 0);
}

TEST(Scheduler, FailedStepEndsItsRequestsAndDropsUnwrittenBlocks) {
  Harness h(64, 4, {});
  ASSERT_TRUE(h.add(1, seq(12, 0), 3).ok());
  StepPlan p;
  ASSERT_TRUE(h.sched->step(&p).ok());
  EXPECT_EQ(h.pool->num_cached(), 3);  // published at allocation, before the K/V exists
  StepResult r;
  ASSERT_TRUE(h.sched->fail_step(p, &r).ok());  // the executor never wrote them
  ASSERT_EQ(r.finished.size(), 1u);
  EXPECT_EQ(r.finished[0].reason, FinishCause::Failed);
  EXPECT_EQ(h.pool->num_cached(), 0);
  EXPECT_EQ(h.pool->num_used(), 0);
  EXPECT_TRUE(h.sched->idle());
}

TEST(Scheduler, OutputForAnUnscheduledRequestIsRefused) {
  Harness h(64, 4, {});
  ASSERT_TRUE(h.add(1, seq(4, 0), 3).ok());
  StepPlan p;
  ASSERT_TRUE(h.sched->step(&p).ok());
  const StepOutput bogus[] = {{99, 3, false}};
  StepResult r;
  EXPECT_EQ(h.sched->update_from_output(p, bogus, &r).code(), StatusCode::InvalidArgument);
  EXPECT_EQ(h.sched->num_running(), 1);
}

TEST(Scheduler, SharedInstructionPrefixIsComputedOnce) {
  // The annotation workload: many rows share an instruction; all are submitted at once.
  Harness h(256, 16, {.max_num_batched_tokens = 2048, .max_num_seqs = 64});
  const auto instruction = seq(256, 1000);
  for (RequestId id = 1; id <= 64; ++id) {
    auto prompt = instruction;
    auto tail = seq(40, (int32_t)id * 100);
    prompt.insert(prompt.end(), tail.begin(), tail.end());
    ASSERT_TRUE(h.add(id, prompt, 8).ok());
  }
  h.run_until_idle();
  for (RequestId id = 1; id <= 64; ++id) EXPECT_EQ(h.finished[id].output, h.expected[id]);
  // Every request after the first reuses the 16 instruction blocks.
  EXPECT_EQ(h.kv->stats().hit_tokens, 63 * 256);
  EXPECT_NEAR(h.kv->stats().hit_rate(), 63.0 * 256 / (64.0 * 296), 1e-9);
}

TEST(Scheduler, RandomizedStressKeepsInvariants) {
  std::mt19937_64 rng(20261128);
  auto rnd = [&](int lo, int hi) { return (int)std::uniform_int_distribution<int>(lo, hi)(rng); };
  int64_t total_completed = 0, total_preemptions = 0, total_hits = 0, total_evictions = 0;
  for (int round = 0; round < 10; ++round) {
    const int32_t bs = rnd(1, 8);
    const int32_t blocks = rnd(8, 24);
    SchedulerOptions opt{.max_num_batched_tokens = rnd(1, 64), .max_num_seqs = rnd(1, 12),
                         .max_prefill_chunk = rnd(0, 1) ? 0 : rnd(1, 16)};
    Harness h(blocks, bs, opt);
    std::vector<std::vector<int32_t>> prefixes;
    for (int i = 0; i < 4; ++i) prefixes.push_back(seq(rnd(1, 3 * bs), 1000 * (i + 1)));
    RequestId next_id = 1;
    int added = 0;
    for (int op = 0; op < 2000; ++op) {
      const int what = rnd(0, 39);
      if (what <= 11) {
        // New request: often a shared prefix plus a random tail.
        std::vector<int32_t> prompt = rnd(0, 2) ? prefixes[(size_t)rnd(0, 3)] : std::vector<int32_t>{};
        for (int k = rnd(prompt.empty() ? 1 : 0, 2 * bs); k > 0; --k) prompt.push_back(rnd(0, kVocab - 1));
        std::vector<int32_t> stops;
        if (rnd(0, 1)) stops.push_back(rnd(0, kVocab - 1));
        Status st = h.add(next_id, prompt, rnd(1, 3 * bs), (uint64_t)rnd(0, 3), stops, rnd(0, 5) != 0);
        if (st.ok()) {
          ++added;
        } else {
          EXPECT_EQ(st.code(), StatusCode::InvalidArgument);  // too big for the pool
        }
        ++next_id;
      } else if (what == 12) {
        // A step whose forward pass fails: its requests end, its unwritten blocks leave the cache.
        StepPlan plan;
        ASSERT_TRUE(h.sched->step(&plan).ok());
        StepResult r;
        EXPECT_TRUE(h.sched->fail_step(plan, &r).ok());
        for (auto& f : r.finished) h.finished[f.id] = f;
        EXPECT_TRUE(h.sched->check_invariants().ok());
      } else if (what <= 15 && next_id > 1) {
        Status st = h.sched->abort_request((RequestId)rnd(1, (int)next_id - 1));
        EXPECT_TRUE(st.ok() || st.code() == StatusCode::NotFound);
        EXPECT_TRUE(h.sched->check_invariants().ok());
      } else {
        h.run_step();
      }
      EXPECT_EQ(h.pool->num_free() + h.pool->num_used(), blocks);
      for (RequestId id : h.sched->running_ids()) {
        const int64_t covered = (int64_t)h.kv->block_table(id).size() * bs;
        EXPECT_GE(covered, h.sched->num_computed_of(id));
      }
      for (BlockId b = 0; b < blocks; ++b) ASSERT_GE(h.pool->block(b).ref_count, 0);
      if (HasFailure()) break;
    }
    h.run_until_idle(100000);
    EXPECT_EQ(h.pool->num_used(), 0);
    EXPECT_TRUE(h.pool->check_invariants().ok());
    int completed = 0;
    for (const auto& [id, f] : h.finished) {
      if (f.reason == FinishCause::Aborted || f.reason == FinishCause::Failed) continue;
      EXPECT_EQ(f.output, h.expected[id]) << "request " << id;
      ++completed;
    }
    EXPECT_GT(added, 100);
    total_completed += completed;
    total_preemptions += h.sched->stats().preemptions;
    total_hits += h.kv->stats().hit_tokens;
    total_evictions += h.pool->stats().evictions;
    if (HasFailure()) break;
  }
  // The run must have exercised what it checks.
  EXPECT_GT(total_completed, 300);
  EXPECT_GT(total_preemptions, 10);
  EXPECT_GT(total_hits, 100);
  EXPECT_GT(total_evictions, 10);
  std::printf("stress: %lld completed, %lld preemptions, %lld hit tokens, %lld evictions\n",
              (long long)total_completed, (long long)total_preemptions, (long long)total_hits,
              (long long)total_evictions);
}

}  // namespace
}  // namespace pginfer
