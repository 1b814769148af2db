// engine/batcher.h: continuous batching for one model. A worker thread runs forward passes over every
// running sequence together: each pass carries one decode token per generating sequence and chunks of
// new prompts within a token budget, so long prompts never stall the others; new requests join at the
// next pass. Requests wait in a bounded queue, sequences run up to a maximum number at once, and each
// sequence keeps its own KV cache (a Session) until it finishes. The paged cache and the prefix cache of
// the serving core will replace those per-sequence caches.
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
#include <vector>

#include "engine/backend.h"
#include "engine/executor.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/status.h"
#include "engine/vocab.h"

namespace pginfer {

// One sequence of a request: its prompt, its cache and its generation.
struct BatchSequence {
  std::vector<int32_t> prompt;
  std::unique_ptr<Session> session;        // KV cache and position, sized for prompt + max tokens
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

// Counters a batcher keeps (read by the engine's statistics).
struct BatcherStats {
  std::atomic<int64_t> requests{0};          // sequences finished
  std::atomic<int64_t> prompt_tokens{0};
  std::atomic<int64_t> generated_tokens{0};
  std::atomic<int64_t> busy_us{0};           // time spent in passes
  std::atomic<int64_t> queued{0};            // jobs waiting to start
  std::atomic<int64_t> running{0};           // sequences in passes
};

// The batching loop of one model.
class Batcher {
 public:
  // Limits of the loop.
  struct Options {
    int64_t max_running = 64;     // sequences in one pass at most
    int64_t max_tokens = 512;     // tokens in one pass at most (decode tokens first, then prompt chunks)
    int64_t max_queue = 64;       // jobs waiting at most
  };
  // A loop for `model` on `backend`; both must outlive it.
  static Status create(const Model& model, Backend& backend, const Options& options, std::unique_ptr<Batcher>* out);
  // Stops the loop; jobs still waiting or running fail.
  ~Batcher();

  // Queues `job` (its sequences ready: sessions empty, generations created). Busy when the queue is full.
  Status submit(std::shared_ptr<BatchJob> job);
  // Counters.
  const BatcherStats& stats() const { return stats_; }

 private:
  // A sequence of a job, waiting or running.
  struct Running {
    std::shared_ptr<BatchJob> job;
    BatchSequence* sequence;
    bool first_of_job;  // admitting it takes the job out of the queue count
  };

  Batcher(const Options& options) : options_(options) {}
  void loop();
  // Runs one pass over `running`; returns false on a backend failure (the jobs have been failed).
  bool pass(std::vector<Running>& running);
  // Ends a sequence: frees its cache, counts it, tells its job.
  void finish(Running& r);

  Options options_;
  std::unique_ptr<Executor> executor_;
  int64_t n_vocab_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Running> waiting_;  // sequences not started, in arrival order
  bool stopping_ = false;
  BatcherStats stats_;
  std::vector<float> logits_;
  std::thread worker_;
};

}  // namespace pginfer
