// engine/scheduler.h: continuous batching decisions for one model, without the model (the top layer of
// scheduler -> KV cache manager -> block pool).
//
// Each step() plans one forward pass over every running sequence: for each scheduled request, how many of
// its tokens to compute (1 for a decode, a chunk of the prompt for a prefill), within a token budget and a
// limit on running sequences. The executor runs the plan; update_from_output() appends the sampled tokens,
// finishes requests (max tokens, a stop token, or the caller's word) and frees their blocks.
//
// Policy, in the order step() applies it:
//  1. Running requests first, decodes before prefill chunks (so a long prompt never stalls sequences that
//     are producing tokens), each group in the order the requests started. A prefill chunk takes what is
//     left of the budget, up to max_prefill_chunk.
//  2. If a running request's next blocks do not fit in the pool, the most recently started running request
//     is preempted (its blocks freed, tail first, so its published full blocks stay in the prefix cache),
//     and the allocation is retried; if the request itself is the newest, it is the one preempted. A
//     preempted request goes back to the front of the waiting queue; when it runs again it recomputes its
//     prompt and the tokens it had generated, reusing whatever of its prefix is still cached.
//  3. Then, if nothing was preempted this step, waiting requests join while budget, sequence slots and
//     blocks allow. Preempted requests come back first, oldest first. Otherwise the next request is the
//     earliest arrival of the session that has the fewest running sequences (ties: earliest arrival), so
//     requests are served first come, first served within a session, and sessions take turns: one session
//     submitting a batch of 64 rows does not shut out another session's single request. If the chosen
//     request's blocks do not fit, admission stops for this step (no overtaking, so big requests are not
//     starved by small ones).
// A request whose prompt plus max_new_tokens could not fit in the whole pool is rejected by add_request.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/kv_cache_manager.h"
#include "engine/status.h"

namespace pginfer {

// Limits of the scheduler.
struct SchedulerOptions {
  int32_t max_num_batched_tokens = 2048;  // token budget of one step (decode tokens plus prefill chunks)
  int32_t max_num_seqs = 64;              // running sequences at most
  int32_t max_prefill_chunk = 0;          // largest prefill chunk of one request in one step; 0: no limit
};

// A request as submitted.
struct SchedRequestSpec {
  RequestId id = 0;                 // unique among live requests
  uint64_t session_id = 0;          // who asked (a database session); fairness is per session
  std::vector<int32_t> prompt;      // prompt token ids, not empty
  int32_t max_new_tokens = 1;       // generation stops after this many tokens (>= 1)
  std::vector<int32_t> stop_tokens; // generation stops after sampling one of these (end of generation)
  bool prefix_caching = true;       // false: neither reads nor publishes cached blocks
};

// What one scheduled request computes in a step.
struct ScheduledChunk {
  RequestId id = 0;                  // the request
  int32_t start_pos = 0;             // position of the first token computed (its K/V so far covers [0, start_pos))
  std::vector<int32_t> tokens;       // the token ids to compute, at positions start_pos, start_pos + 1, ...
  std::vector<BlockId> block_table;  // the request's blocks after this step's allocation
  bool sample = false;               // the chunk ends at the last known token: sample from its logits
  bool is_prefill = false;           // computes prompt (or recomputed) tokens rather than one decode token
};

// The plan of one step.
struct StepPlan {
  std::vector<ScheduledChunk> chunks;    // scheduled requests, decodes first
  std::vector<RequestId> preempted;      // requests preempted while planning (their K/V is gone)
  int32_t num_tokens = 0;                // sum of chunk token counts
};

// The executor's result for one request of a step.
struct StepOutput {
  RequestId id = 0;       // the request
  int32_t token = -1;     // the sampled token when its chunk had sample set (ignored otherwise)
  bool finish = false;    // the caller ends it now (stop string, cancel), after appending `token` if any
};

// Why a request ended.
// (Not generate.h's FinishReason: this one also covers aborts and failed steps.)
enum class FinishCause {
  Length,     // max_new_tokens generated
  StopToken,  // sampled one of its stop tokens
  Caller,     // the executor's caller said so (stop string, cancel)
  Aborted,    // abort_request
  Failed,     // its step failed, or no token came back for it
};

// A request that ended in update_from_output (or fail_step).
struct FinishedRequest {
  RequestId id = 0;                          // the request
  FinishCause reason = FinishCause::Length;  // why it ended
  std::vector<int32_t> output;               // the tokens it generated
};

// What update_from_output reports.
struct StepResult {
  std::vector<std::pair<RequestId, int32_t>> new_tokens;  // tokens appended this step, for streaming
  std::vector<FinishedRequest> finished;                  // requests that ended (blocks already freed)
};

// Counters of the scheduler.
struct SchedulerStats {
  int64_t steps = 0;          // step() calls that scheduled something
  int64_t preemptions = 0;    // requests preempted
  int64_t rejected = 0;       // requests refused by add_request
  int64_t finished = 0;       // requests that ended
};

// The continuous-batching scheduler of one model. Not thread-safe: one engine thread drives it.
class Scheduler {
 public:
  // A scheduler over `kv` (not owned, must outlive it); InvalidArgument for non-positive limits.
  static Status create(KvCacheManager* kv, const SchedulerOptions& options, std::unique_ptr<Scheduler>* out);

  // Queues a request; it joins at a later step. InvalidArgument for an empty prompt, max_new_tokens < 1, a
  // duplicate id, or a request that could not fit in the whole pool (prompt plus max_new_tokens).
  Status add_request(SchedRequestSpec spec);
  // Removes a waiting or running request at once, freeing its blocks (blocks of a step not yet reported
  // leave the prefix cache). NotFound for an unknown id. A request aborted between step() and
  // update_from_output is skipped by the latter; the executor must still run the whole plan it was given,
  // since other requests of the step may share blocks the aborted one was writing.
  Status abort_request(RequestId id);

  // Plans the next step into *plan (cleared first). Internal only on a bookkeeping bug.
  Status step(StepPlan* plan);
  // Applies the executor's outputs for `plan` (the latest step()'s): appends tokens, finishes requests
  // and frees their blocks. InvalidArgument for an output of a request that was not in the plan.
  Status update_from_output(const StepPlan& plan, std::span<const StepOutput> outputs, StepResult* result);
  // The step of `plan` failed as a whole: every request in it ends with FinishCause::Failed, and blocks
  // whose K/V the step would have written are dropped from the prefix cache.
  Status fail_step(const StepPlan& plan, StepResult* result);

  // Requests waiting to join (including preempted ones).
  int32_t num_waiting() const { return (int32_t)waiting_.size(); }
  // Requests running.
  int32_t num_running() const { return (int32_t)running_.size(); }
  // True when nothing waits or runs.
  bool idle() const { return waiting_.empty() && running_.empty(); }
  // Ids of running requests, in the order they started.
  std::vector<RequestId> running_ids() const;
  // Ids of waiting requests, front first.
  std::vector<RequestId> waiting_ids() const;
  // Tokens known for request `id` (prompt then output), or empty for an unknown id.
  std::span<const int32_t> tokens_of(RequestId id) const;
  // Positions of request `id` whose K/V is computed or scheduled, or -1 for an unknown id.
  int32_t num_computed_of(RequestId id) const;
  // Counters.
  const SchedulerStats& stats() const { return stats_; }
  // Checks that every running request's block table covers its computed tokens and that waiting requests
  // hold no blocks; Internal with the first violation.
  Status check_invariants() const;

 private:
  // A live request's scheduling state.
  struct Req {
    SchedRequestSpec spec;         // as submitted (its prompt moved into tokens)
    std::vector<int32_t> tokens;   // prompt then output
    int32_t num_prompt = 0;
    int32_t num_computed = 0;      // positions computed or scheduled
    int32_t num_confirmed = 0;     // positions whose K/V a finished step wrote (or a prefix hit supplied)
    uint64_t arrival = 0;          // order of add_request
    bool preempted = false;        // waiting after a preemption
    bool running = false;          // in running_ (else in waiting_)
  };
  Scheduler(KvCacheManager* kv, const SchedulerOptions& options) : kv_(kv), options_(options) {}
  // Preempts the newest running request; returns its id.
  RequestId preempt_newest(StepPlan* plan, int32_t* budget);
  // Index in waiting_ of the next request to admit, per the fairness policy.
  size_t pick_waiting() const;
  // Ends request `r` (running or not) with `reason`, freeing its blocks, and records it in *result.
  Status finish(Req& r, FinishCause reason, StepResult* result);
  // One running request of `session` stopped running.
  void leave_session(uint64_t session);
  // Appends a chunk for `r` of `n` tokens to `plan`.
  void add_chunk(Req& r, int32_t n, bool prefill, StepPlan* plan);

  KvCacheManager* kv_;                                         // block tables (not owned)
  SchedulerOptions options_;                                   // limits
  std::unordered_map<RequestId, std::unique_ptr<Req>> requests_;  // every live request, owned
  std::deque<Req*> waiting_;                                   // preempted first, then by arrival
  std::vector<Req*> running_;                                  // in the order they started
  std::unordered_map<uint64_t, int32_t> running_per_session_;  // running count per session, for fairness
  uint64_t next_arrival_ = 0;                                  // arrival counter
  SchedulerStats stats_;                                       // counters
};

}  // namespace pginfer
