// engine/batcher.h: the serving loop of one model. A worker thread drives the scheduler (engine/scheduler.h)
// over a paged KV cache: a pool of blocks in the backend's memory (Backend::create_kv_pool), handed out by
// the block pool and the KV cache manager, which also keep full blocks as a prefix cache shared by every
// request. Each step is one forward pass over every running sequence (decode tokens and prompt chunks
// within a token budget); new requests join at the next step; when the pool is full the newest sequence
// is preempted and recomputed later. The Generation of each sequence samples from its logits and turns
// tokens into text.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/backend.h"
#include "engine/block_pool.h"
#include "engine/executor.h"
#include "engine/generate.h"
#include "engine/kv_cache_manager.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/session.h"
#include "engine/status.h"
#include "engine/vocab.h"

namespace pginfer {

// One sequence of a request: its prompt and its generation (the batcher owns its cache).
struct BatchSequence {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 1;                  // new tokens at most (as the generation's options say)
  bool prefix_caching = true;              // false: neither uses nor fills the prefix cache
  std::unique_ptr<Generation> generation;  // sampling state and text
};

// A request handed to a Batcher: its sequences, and what the thread waiting for it sees.
class BatchJob {
 public:
  // The request's sequences, in order (filled before submit()).
  std::vector<std::unique_ptr<BatchSequence>> sequences;
  // Asked by the batching loop before every pass while the job runs (so that a client gone or a time
  // limit stops the job within one pass); true cancels the job. Optional.
  std::function<bool()> should_stop;

  // Asks the batcher to stop every sequence of the job at its next pass.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  // Waits up to `timeout` for the job to finish; appends the pieces of text streamed meanwhile to
  // *streamed, one element per piece as generated. True when every sequence has finished (or the job
  // failed: see error()).
  bool wait_for(std::chrono::milliseconds timeout, std::vector<std::string>* streamed);
  // Why the job failed, if it did.
  Status error() const;
  // For the batcher: text streamed by a sequence (false when the job is cancelled); a sequence done; the
  // job failed.
  bool stream(std::string_view text);
  void sequence_done();
  void fail(const Status& st);

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> pending_;  // streamed pieces not yet taken
  int finished_ = 0;
  Status error_;
  std::atomic<bool> cancelled_{false};
};

// Counters a batcher keeps (read by the engine's statistics from other threads).
struct BatcherStats {
  std::atomic<int64_t> requests{0};          // sequences finished
  std::atomic<int64_t> prompt_tokens{0};
  std::atomic<int64_t> generated_tokens{0};
  std::atomic<int64_t> busy_us{0};           // time spent in passes
  std::atomic<int64_t> schedule_ns{0};       // of that, nanoseconds planning and applying steps (scheduler, KV cache
                                             // manager and block pool: the prefix cache's bookkeeping)
  std::atomic<int64_t> queued{0};            // sequences waiting to start (or preempted)
  std::atomic<int64_t> running{0};           // sequences in passes
  std::atomic<int64_t> blocks_used{0};       // KV blocks held by sequences
  std::atomic<int64_t> blocks_free{0};       // KV blocks free (cached prefixes among them)
  std::atomic<int64_t> prefix_prompt_tokens{0};  // tokens admitted sequences needed K/V for
  std::atomic<int64_t> prefix_hit_tokens{0};     // of those, tokens the prefix cache supplied
  std::atomic<int64_t> preemptions{0};
};

// The batching loop of one model.
class Batcher {
 public:
  // Limits of the loop.
  struct Options {
    int64_t max_running = 64;     // sequences in one pass at most
    int64_t max_tokens = 512;     // tokens in one pass at most (decode tokens first, then prompt chunks)
    int64_t max_queue = 64;       // jobs waiting at most
    int64_t kv_blocks = 1024;     // blocks of the KV pool
    int64_t block_size = 16;      // positions per block (a power of two)
    uint64_t model_key = 0;       // distinguishes this model's blocks in prefix hashes
    // Called once, on the batching thread, after a pass failed with DeviceLost and its jobs were failed: the
    // device cannot serve again (the engine restarts its process). Optional.
    std::function<void(const Status&)> on_device_lost;
    // Tests only: every pass fails with DeviceLost, as after a GPU error (PG_INFER_TEST_DEVICE_LOST, server.h).
    bool simulate_device_lost = false;
  };
  // The scheduler's limits for a loop with `options` (also for benchmarks that plan as the loop does).
  static SchedulerOptions scheduler_options(const Options& options);
  // A loop for `model` on `backend`; both must outlive it.
  static Status create(const Model& model, Backend& backend, const Options& options, std::unique_ptr<Batcher>* out);
  // Stops the loop; jobs still waiting or running fail.
  ~Batcher();

  // Queues `job` (its sequences ready: sessions empty, generations created). Busy when the queue is full.
  Status submit(std::shared_ptr<BatchJob> job);
  // Counters.
  const BatcherStats& stats() const { return stats_; }

 private:
  // A sequence in the scheduler, and its job.
  struct Live {
    std::shared_ptr<BatchJob> job;
    BatchSequence* sequence;
    std::unique_ptr<PagedKvCache> view;  // its block table over the pool
  };

  Batcher(const Options& options) : options_(options) {}
  void loop();
  // Runs one scheduler step; false when nothing could be scheduled.
  bool step();
  // A sequence that ended: counts it, tells its job.
  void finished(RequestId id);
  // Publishes pool and prefix-cache counters.
  void publish_stats();

  Options options_;
  std::unique_ptr<KvPool> kv_pool_;
  std::unique_ptr<BlockPool> blocks_;
  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Executor> executor_;
  int64_t n_vocab_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<BatchJob>, BatchSequence*>> arrivals_;  // not yet given to the scheduler
  bool stopping_ = false;
  BatcherStats stats_;
  std::unordered_map<RequestId, Live> live_;  // the worker's: sequences in the scheduler
  RequestId next_id_ = 1;
  std::vector<float> logits_;
  std::vector<int32_t> best_ids_;  // per chunk of a pass: the argmax of a greedy generation's logits
  bool device_lost_reported_ = false;  // on_device_lost was called
  std::thread worker_;
};

}  // namespace pginfer
