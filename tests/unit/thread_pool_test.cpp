// tests/unit/thread_pool_test.cpp: every task runs exactly once, on any thread count, many times over, and
// the caller waits for workers slower than its spin.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "engine/thread_pool.h"

namespace pginfer {
namespace {

TEST(ThreadPool, RunsEveryTaskOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int round = 0; round < 200; ++round) {
      const int n = 1 + round % 37;
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> bad_thread{0};
      pool.parallel_for(n, [&](int64_t task, int thread) {
        hits[task].fetch_add(1);
        if (thread < 0 || thread >= threads) bad_thread.fetch_add(1);
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "task " << i << " round " << round;
      ASSERT_EQ(bad_thread.load(), 0);
    }
  }
}

// A worker slower than the caller's spin (as when it is descheduled): the caller sleeps until the last
// worker wakes it, and every task has run when parallel_for returns.
TEST(ThreadPool, CallerWaitsForASlowWorker) {
  ThreadPool pool(4);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> done{0};
    pool.parallel_for(4, [&](int64_t task, int thread) {
      if (thread != 0) std::this_thread::sleep_for(std::chrono::milliseconds(2 + task % 2));
      done.fetch_add(1);
    });
    ASSERT_EQ(done.load(), 4) << "round " << round;
  }
}

TEST(ThreadPool, ZeroTasksIsANoOp) {
  ThreadPool pool(2);
  bool ran = false;
  pool.parallel_for(0, [&](int64_t, int) { ran = true; });
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace pginfer
