// engine/thread_pool.h: a fixed set of worker threads that run one parallel loop at a time.
//
// Decoding calls it a few hundred times per token, so dispatch must cost microseconds: workers spin for
// a short while on an atomic generation counter before falling asleep on a condition variable, and the caller
// spins as briefly for the last worker before it sleeps too.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pginfer {

// Runs fn(task, thread) for task in [0, n_tasks) on `threads` threads (the caller is thread 0).
class ThreadPool {
 public:
  // Starts threads - 1 workers (threads >= 1).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Number of threads including the caller.
  int size() const { return n_threads_; }

  // Runs fn for every task, tasks taken dynamically, and returns when all have finished.
  // Not reentrant: fn must not call parallel_for.
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  void worker_main(int thread);
  void run_tasks(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;  // workers wait here for a loop
  std::condition_variable done_;  // the caller waits here for the last worker, after spinning
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> busy_workers_{0};
  int64_t n_tasks_ = 0;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  std::atomic<bool> stop_{false};
};

}  // namespace pginfer
