// tests/cuda_emu/cuda_emu.cpp: the emulated CUDA device (cuda_emu.h): fibers for the threads of a block, device
// memory, streams and their capture into graphs, the runtime API's errors, and cuBLAS's GEMM.
#include "tests/cuda_emu/cuda_emu.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cublas_v2.h"
#include "cuda_runtime_api.h"

struct EmuStream {
  bool capturing = false;    // work is recorded into `graph` instead of run
  bool invalidated = false;  // the capture met an operation it forbids
  EmuGraph* graph = nullptr;
};
struct EmuEvent {};
struct EmuGraph {
  std::vector<std::function<void()>> nodes;
};
struct EmuGraphExec {
  std::vector<std::function<void()>> nodes;
};
struct EmuBlas {
  cudaStream_t stream = nullptr;
};

namespace pginfer_emu {

namespace {

constexpr int kWarpSize = 32;
constexpr size_t kDeviceBytes = size_t{1} << 30;        // the emulated device's memory
constexpr size_t kSharedDefault = 48 << 10;             // dynamic shared memory without an attribute
constexpr size_t kSharedOptInMax = 227 << 10;           // the most an attribute may allow (H100)
constexpr size_t kFiberStackBytes = 64 << 10;  // with a guard page at the bottom

// ---- Errors: the last one of the calling thread, and a kernel fault, which sticks to the device.

thread_local cudaError_t last_error = cudaSuccess;
std::mutex device_mutex;  // memory, kernel attributes and the device's failure
std::atomic<cudaError_t> sticky_error{cudaSuccess};  // read without the lock
std::string sticky_what;

// Fails the device with `e` (the first failure stays).
void fail_device(cudaError_t e, const char* what) {
  std::lock_guard<std::mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return;
  sticky_what = what;
  sticky_error = e;
}

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

// ---- Memory.

std::map<const void*, size_t> device_blocks;
size_t device_used = 0;
int current_device = 0;
std::map<std::pair<const void*, int>, int> shared_allowed;  // (kernel, device) -> dynamic shared bytes allowed
thread_local int captures_in_thread = 0;
thread_local std::vector<EmuStream*> capturing_streams;

// An operation a capture forbids in its thread: fails, and invalidates the thread's captures.
bool forbidden_in_capture() {
  if (captures_in_thread == 0) return false;
  for (EmuStream* s : capturing_streams) s->invalidated = true;
  set_error(cudaErrorStreamCaptureUnsupported);
  return true;
}

// ---- Fibers: the threads of one block, switched on the caller's thread.

// Saves the callee-saved registers and the stack pointer in *from, and resumes the context saved in `to`.
extern "C" void pgi_emu_switch(void** from, void* to);
asm(R"(
.text
.globl pgi_emu_switch
.type pgi_emu_switch, @function
pgi_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size pgi_emu_switch, .-pgi_emu_switch
)");

enum class FiberState { kReady, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  void* sp = nullptr;
  FiberState state = FiberState::kReady;
  unsigned mask = 0;  // at a warp barrier: the lanes it waits for
  int src = -1;       // at a shuffle: the lane whose value it takes (warp_exchange)
  uint64_t sent = 0, received = 0;
  uint3 thread;
};

// One block in execution. Fibers run from a queue of ready ones, each until it waits at a barrier or ends; the
// last of a barrier's threads to arrive queues them all again (in thread order).
struct BlockRun {
  std::vector<Fiber> fibers;
  std::vector<unsigned> warp_waiting;  // per warp, the lanes at a warp barrier
  std::vector<unsigned> warp_gone;     // per warp, the lanes that have ended or do not exist
  std::vector<size_t> queue;           // ready fibers, a ring of one place per fiber
  size_t queue_head = 0, queue_size = 0;
  size_t live = 0;                     // fibers not ended
  size_t at_block_barrier = 0;
  std::vector<unsigned char> shared;   // dynamic shared memory (+128 for alignment)
  unsigned char* shared_base = nullptr;
  const std::function<void()>* body = nullptr;
  void* scheduler_sp = nullptr;
  size_t current = 0;
  const char* fault = nullptr;         // why the block cannot go on
};

thread_local BlockRun* run = nullptr;
thread_local char* stacks = nullptr;   // kFiberStackBytes per thread of the largest block so far
thread_local size_t stack_count = 0;

void make_ready(BlockRun& b, size_t i) {
  b.fibers[i].state = FiberState::kReady;
  b.queue[(b.queue_head + b.queue_size++) % b.queue.size()] = i;
}

size_t take_ready(BlockRun& b) {
  const size_t i = b.queue[b.queue_head];
  b.queue_head = (b.queue_head + 1) % b.queue.size();
  --b.queue_size;
  b.current = i;
  threadIdx = b.fibers[i].thread;
  return i;
}

// Switches from the running fiber to the next ready one (itself, maybe), or to the scheduler when none is ready
// or the block has faulted; returns when the fiber is resumed.
void yield_fiber() {
  BlockRun& b = *run;
  void** mine = &b.fibers[b.current].sp;
  if (b.queue_size == 0 || b.fault != nullptr) {
    pgi_emu_switch(mine, b.scheduler_sp);
    return;
  }
  const size_t next = take_ready(b);
  if (&b.fibers[next].sp != mine) pgi_emu_switch(mine, b.fibers[next].sp);
}

[[noreturn]] void fiber_main() {
  (*run->body)();
  BlockRun& b = *run;
  const size_t me = b.current, first = me / kWarpSize * kWarpSize;
  b.fibers[me].state = FiberState::kDone;
  b.warp_gone[me / kWarpSize] |= 1u << (me - first);
  --b.live;
  // A lane waiting for this one would wait forever.
  for (size_t j = first; j < std::min(b.fibers.size(), first + kWarpSize); ++j) {
    if (b.fibers[j].state == FiberState::kAtWarpBarrier && ((b.fibers[j].mask >> (me - first)) & 1u)) {
      b.fault = "a shuffle or __syncwarp names a lane that has exited";
    }
  }
  if (b.live > 0 && b.at_block_barrier == b.live) {  // exited threads count as arrived at __syncthreads
    b.at_block_barrier = 0;
    for (size_t i = 0; i < b.fibers.size(); ++i) {
      if (b.fibers[i].state == FiberState::kAtBlockBarrier) make_ready(b, i);
    }
  }
  yield_fiber();
  std::abort();  // an ended fiber is never resumed
}

// Prepares fiber i's stack so that switching to it enters fiber_main.
void start_fiber(size_t i) {
  // Tops skewed by a cache line per fiber, so that the fibers' frames do not all fall in the same cache sets.
  char* top = stacks + (i + 1) * kFiberStackBytes - (i % 64) * 64;
  auto* sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                     // fiber_main's return address (never used)
  *--sp = reinterpret_cast<void*>(&fiber_main);        // where pgi_emu_switch returns to
  for (int r = 0; r < 6; ++r) *--sp = nullptr;          // rbp, rbx, r12 .. r15
  run->fibers[i].sp = sp;
}

void ensure_stacks(size_t n) {
  if (n <= stack_count) return;
  if (stacks) munmap(stacks, stack_count * kFiberStackBytes);
  void* p = mmap(nullptr, n * kFiberStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "cuda_emu: cannot map fiber stacks\n");
    std::abort();
  }
  stacks = static_cast<char*>(p);
  stack_count = n;
  for (size_t i = 0; i < n; ++i) mprotect(stacks + i * kFiberStackBytes, 4096, PROT_NONE);  // overflow faults
}

// Runs every thread of one block to its end; false, with b.fault set, when they cannot all reach it.
bool run_block(BlockRun& b) {
  const size_t n = b.fibers.size();
  b.queue.assign(n, 0);
  b.queue_head = b.queue_size = 0;
  b.warp_waiting.assign((n + kWarpSize - 1) / kWarpSize, 0);
  b.warp_gone.assign(b.warp_waiting.size(), 0);
  if (n % kWarpSize != 0) b.warp_gone.back() = ~0u << (n % kWarpSize);
  b.live = n;
  b.at_block_barrier = 0;
  b.fault = nullptr;
  for (size_t i = 0; i < n; ++i) make_ready(b, i);
  // Fibers switch to one another; the scheduler is back when none is ready (or one faulted).
  while (b.queue_size > 0 && b.fault == nullptr) {
    const size_t i = take_ready(b);
    pgi_emu_switch(&b.scheduler_sp, b.fibers[i].sp);
  }
  if (b.fault == nullptr && b.live > 0) b.fault = "threads wait at barriers that others never reach";
  return b.fault == nullptr;
}

const char* error_name(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
  }
  return "unknown error";
}

// With PGI_EMU_PROFILE set: per kernel, launches and seconds, printed at exit.
struct KernelTime {
  int64_t launches = 0;
  double seconds = 0.0;
};
std::map<const void*, KernelTime>* kernel_times() {
  static std::map<const void*, KernelTime>* times = [] {
    if (std::getenv("PGI_EMU_PROFILE") == nullptr) return (std::map<const void*, KernelTime>*)nullptr;
    auto* t = new std::map<const void*, KernelTime>;
    std::atexit([] {
      std::vector<std::pair<const void*, KernelTime>> all(kernel_times()->begin(), kernel_times()->end());
      std::sort(all.begin(), all.end(),
                [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
      for (const auto& [k, t] : all) {
        Dl_info info{};
        dladdr(k, &info);
        std::fprintf(stderr, "cuda_emu: %10.3f s %8lld launches  %s+0x%zx\n", t.seconds, (long long)t.launches,
                     info.dli_fname ? info.dli_fname : "?",
                     (size_t)(static_cast<const char*>(k) - static_cast<const char*>(info.dli_fbase)));
      }
    });
    return t;
  }();
  return times;
}

void execute_grid(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

// Runs a kernel's grid now (the stream's work runs at once), timed with PGI_EMU_PROFILE.
void run_grid(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  std::map<const void*, KernelTime>* times = kernel_times();
  if (times == nullptr) return execute_grid(kernel, grid, block, shared_bytes, body);
  const auto t0 = std::chrono::steady_clock::now();
  execute_grid(kernel, grid, block, shared_bytes, body);
  KernelTime& t = (*times)[kernel];
  ++t.launches;
  t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Helper threads that run blocks of a grid alongside the launching thread (PGI_EMU_THREADS, default: the cores, at
// most 8, counting the launching thread).
class BlockWorkers {
 public:
  BlockWorkers() {
    int n = (int)std::thread::hardware_concurrency();
    if (const char* env = std::getenv("PGI_EMU_THREADS")) n = std::atoi(env);
    n = std::clamp(n, 1, 8);
    for (int i = 1; i < n; ++i) std::thread([this] { serve(); }).detach();  // they wait for work until exit
    helpers_ = n - 1;
  }
  int helpers() const { return helpers_; }
  // Runs job() on every helper and on the calling thread; returns when all have returned.
  void run_everywhere(const std::function<void()>& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      pending_ = helpers_;
      ++generation_;
    }
    wake_.notify_all();
    job();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void serve() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void()>* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
      }
      (*job)();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void()>* job_ = nullptr;
  int pending_ = 0, helpers_ = 0;
  uint64_t generation_ = 0;
};

BlockWorkers& block_workers() {
  static BlockWorkers* workers = new BlockWorkers;  // never destroyed: its threads outlive main's statics
  return *workers;
}

// Runs blocks of the grid, taking their numbers from *next, on the calling thread, until none is left or the
// device has failed.
void run_blocks(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body,
                std::atomic<uint64_t>* next) {
  BlockRun b;
  const size_t n = (size_t)block.x * block.y * block.z;
  const uint64_t total = (uint64_t)grid.x * grid.y * grid.z;
  b.fibers.resize(n);
  b.shared.resize(shared_bytes + 128);
  b.shared_base =
      reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(b.shared.data()) + 127) & ~uintptr_t{127});
  b.body = &body;
  ensure_stacks(n);
  run = &b;
  blockDim = {block.x, block.y, block.z};
  gridDim = {grid.x, grid.y, grid.z};
  for (uint64_t id = (*next)++; id < total && sticky_error == cudaSuccess; id = (*next)++) {
    blockIdx = {(unsigned)(id % grid.x), (unsigned)(id / grid.x % grid.y), (unsigned)(id / grid.x / grid.y)};
    std::fill(b.shared.begin(), b.shared.end(), 0xff);  // NaN bytes: what nothing wrote
    for (size_t i = 0; i < n; ++i) {
      b.fibers[i] = Fiber{};
      b.fibers[i].thread = {(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                            (unsigned)(i / block.x / block.y)};
      start_fiber(i);
    }
    if (!run_block(b)) fail_device(cudaErrorLaunchFailure, b.fault);
  }
  run = nullptr;
}

// Runs the blocks of a grid, in parallel on the block workers when there are many; a block that faults ends the
// launch and fails the device. (Blocks share nothing but global memory, whose atomics are atomic here too.)
void execute_grid(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  if (sticky_error != cudaSuccess) return;
  std::atomic<uint64_t> next{0};
  const uint64_t total = (uint64_t)grid.x * grid.y * grid.z;
  if (total < 16 || block_workers().helpers() == 0) {
    run_blocks(grid, block, shared_bytes, body, &next);
  } else {
    block_workers().run_everywhere([&] { run_blocks(grid, block, shared_bytes, body, &next); });
  }
  if (sticky_error != cudaSuccess) {
    std::fprintf(stderr, "cuda_emu: kernel %p failed: %s\n", kernel, sticky_what.c_str());
    set_error(sticky_error);
  }
}

}  // namespace

void block_barrier() {
  BlockRun& b = *run;
  b.fibers[b.current].state = FiberState::kAtBlockBarrier;
  if (++b.at_block_barrier == b.live) {
    b.at_block_barrier = 0;
    for (size_t i = 0; i < b.fibers.size(); ++i) {
      if (b.fibers[i].state == FiberState::kAtBlockBarrier) make_ready(b, i);
    }
  }
  yield_fiber();
}

void warp_barrier(unsigned mask) {
  BlockRun& b = *run;
  const size_t me = b.current, first = me / kWarpSize * kWarpSize, w = me / kWarpSize;
  const unsigned bit = 1u << (me - first);
  Fiber& f = b.fibers[me];
  f.state = FiberState::kAtWarpBarrier;
  f.mask = mask;
  b.warp_waiting[w] |= bit;
  if ((mask & bit) == 0) b.fault = "a lane waits at a warp barrier whose mask does not name it";
  if ((b.warp_waiting[w] & mask) == mask && b.fault == nullptr) {
    // Every lane named is waiting: released together if they all wait with this mask.
    bool same = true;
    for (size_t j = 0; j < kWarpSize; ++j) {
      if (((mask >> j) & 1u) && b.fibers[first + j].mask != mask) same = false;
    }
    if (same) {
      b.warp_waiting[w] &= ~mask;
      for (size_t j = 0; j < kWarpSize; ++j) {
        if (((mask >> j) & 1u) == 0) continue;
        Fiber& g = b.fibers[first + j];
        if (g.src >= 0) g.received = b.fibers[first + g.src].sent;
        make_ready(b, first + j);
      }
    }
  }
  if (mask & b.warp_gone[w]) b.fault = "a shuffle or __syncwarp names a lane that has exited or does not exist";
  yield_fiber();
}

uint64_t warp_exchange(unsigned mask, uint64_t bits, int src) {
  Fiber& f = run->fibers[run->current];
  if (((mask >> src) & 1u) == 0) kernel_fault(1, "a shuffle reads a lane outside its mask");
  f.sent = bits;
  f.src = src;
  warp_barrier(mask);  // the last lane to arrive hands out the values
  f.src = -1;
  return f.received;
}

unsigned char* dynamic_shared() { return run->shared_base; }

void kernel_fault(int error, const char* what) {
  fail_device(static_cast<cudaError_t>(error), what);
}

void launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes, void* stream_ptr,
            std::function<void()> body) {
  auto* stream = static_cast<cudaStream_t>(stream_ptr);
  if (sticky_error != cudaSuccess) {
    set_error(sticky_error);
    return;
  }
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 ||
      threads == 0 || threads > 1024 || block.z > 64) {
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (dynamic_shared_bytes > kSharedDefault) {
    std::lock_guard<std::mutex> lock(device_mutex);
    auto it = shared_allowed.find({kernel, current_device});
    if (it == shared_allowed.end() || (size_t)it->second < dynamic_shared_bytes) {
      set_error(cudaErrorInvalidValue);
      return;
    }
  }
  enqueue(stream, [kernel, grid, block, dynamic_shared_bytes, body = std::move(body)] {
    run_grid(kernel, grid, block, dynamic_shared_bytes, body);
  });
}

cudaError_t set_function_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > kSharedOptInMax) {
    return set_error(cudaErrorInvalidValue);
  }
  std::lock_guard<std::mutex> lock(device_mutex);
  shared_allowed[{kernel, current_device}] = value;
  return cudaSuccess;
}

void enqueue(cudaStream_t stream, std::function<void()> fn) {
  if (stream != nullptr && stream->capturing) {
    if (!stream->invalidated) stream->graph->nodes.push_back(std::move(fn));
    return;
  }
  fn();
}

}  // namespace pginfer_emu

using pginfer_emu::set_error;

// ---- The runtime API.

cudaError_t cudaGetLastError() {
  if (pginfer_emu::sticky_error != cudaSuccess) return pginfer_emu::sticky_error.load();
  const cudaError_t e = pginfer_emu::last_error;
  pginfer_emu::last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() {
  const cudaError_t sticky = pginfer_emu::sticky_error;
  return sticky != cudaSuccess ? sticky : pginfer_emu::last_error;
}

const char* cudaGetErrorString(cudaError_t e) { return pginfer_emu::error_name(e); }

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  pginfer_emu::current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = pginfer_emu::current_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
  }
  return set_error(cudaErrorInvalidValue);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(pginfer_emu::device_mutex);
  *total_bytes = pginfer_emu::kDeviceBytes;
  *free_bytes = pginfer_emu::kDeviceBytes - pginfer_emu::device_used;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  if (pginfer_emu::sticky_error != cudaSuccess) return set_error(pginfer_emu::sticky_error);
  std::lock_guard<std::mutex> lock(pginfer_emu::device_mutex);
  if (bytes > pginfer_emu::kDeviceBytes - pginfer_emu::device_used) return set_error(cudaErrorMemoryAllocation);
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* m = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
  if (m == nullptr) return set_error(cudaErrorMemoryAllocation);
  std::memset(m, 0xff, rounded);  // NaN bytes: what nothing wrote
  pginfer_emu::device_blocks[m] = bytes;
  pginfer_emu::device_used += bytes;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  std::lock_guard<std::mutex> lock(pginfer_emu::device_mutex);
  auto it = pginfer_emu::device_blocks.find(p);
  if (it == pginfer_emu::device_blocks.end()) return set_error(cudaErrorInvalidValue);
  pginfer_emu::device_used -= it->second;
  pginfer_emu::device_blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = nullptr;
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void* p) {
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  if (pginfer_emu::sticky_error != cudaSuccess) return set_error(pginfer_emu::sticky_error);
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t stream) {
  if (pginfer_emu::sticky_error != cudaSuccess) return set_error(pginfer_emu::sticky_error);
  pginfer_emu::enqueue(stream, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new EmuStream;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  return pginfer_emu::sticky_error != cudaSuccess ? set_error(pginfer_emu::sticky_error) : cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = new EmuEvent;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  return event == nullptr ? set_error(cudaErrorInvalidResourceHandle) : cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return set_error(cudaErrorInvalidResourceHandle);
  if (pginfer_emu::forbidden_in_capture()) return cudaErrorStreamCaptureUnsupported;
  return pginfer_emu::sticky_error != cudaSuccess ? set_error(pginfer_emu::sticky_error) : cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (stream == nullptr || stream->capturing) return set_error(cudaErrorInvalidValue);
  stream->capturing = true;
  stream->invalidated = false;
  stream->graph = new EmuGraph;
  ++pginfer_emu::captures_in_thread;
  pginfer_emu::capturing_streams.push_back(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  if (stream == nullptr || !stream->capturing) return set_error(cudaErrorInvalidValue);
  stream->capturing = false;
  --pginfer_emu::captures_in_thread;
  auto& streams = pginfer_emu::capturing_streams;
  streams.erase(std::find(streams.begin(), streams.end(), stream));
  if (stream->invalidated) {
    delete stream->graph;
    stream->graph = nullptr;
    return set_error(cudaErrorStreamCaptureInvalidated);
  }
  *graph = stream->graph;
  stream->graph = nullptr;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return set_error(cudaErrorInvalidValue);
  *exec = new EmuGraphExec{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return set_error(cudaErrorInvalidValue);
  if (pginfer_emu::sticky_error != cudaSuccess) return set_error(pginfer_emu::sticky_error);
  pginfer_emu::enqueue(stream, [exec] {
    for (const auto& node : exec->nodes) node();
  });
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

// ---- cuBLAS.

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new EmuBlas;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasSetWorkspace(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }

namespace {

// Element i of an operand of type t, as a float.
float operand(const void* p, cudaDataType_t t, size_t i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  return t == CUDA_R_16F ? pginfer::fp16_to_fp32(h) : pginfer::bf16_to_fp32(h);
}

}  // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* a, cudaDataType_t a_type, int lda, const void* b,
                            cudaDataType_t b_type, int ldb, const void* beta, void* c, cudaDataType_t c_type, int ldc,
                            cublasComputeType_t, cublasGemmAlgo_t) {
  if (c_type != CUDA_R_32F || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (lda < (transa == CUBLAS_OP_N ? m : k) || ldb < (transb == CUBLAS_OP_N ? k : n) || ldc < m) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  pginfer_emu::enqueue(handle->stream, [=] {
    // op(A) as rows of k (row i: A's column i when transposed), op(B) as columns of k; each sum in 8 parts (cuBLAS's
    // order is its own too).
    std::vector<float> at((size_t)m * k), bt((size_t)n * k);
    for (int i = 0; i < m; ++i) {
      for (int l = 0; l < k; ++l) {
        at[(size_t)i * k + l] =
            operand(a, a_type, transa == CUBLAS_OP_N ? (size_t)i + (size_t)l * lda : (size_t)l + (size_t)i * lda);
      }
    }
    for (int j = 0; j < n; ++j) {
      for (int l = 0; l < k; ++l) {
        bt[(size_t)j * k + l] =
            operand(b, b_type, transb == CUBLAS_OP_N ? (size_t)l + (size_t)j * ldb : (size_t)j + (size_t)l * ldb);
      }
    }
    float* out = static_cast<float*>(c);
    for (int j = 0; j < n; ++j) {
      const float* bj = bt.data() + (size_t)j * k;
      for (int i = 0; i < m; ++i) {
        const float* ai = at.data() + (size_t)i * k;
        float part[8] = {};
        int l = 0;
        for (; l + 8 <= k; l += 8) {
          for (int u = 0; u < 8; ++u) part[u] += ai[l + u] * bj[l + u];
        }
        for (; l < k; ++l) part[0] += ai[l] * bj[l];
        float s = 0.0f;
        for (float p : part) s += p;
        float& y = out[(size_t)i + (size_t)j * ldc];
        y = be == 0.0f ? al * s : al * s + be * y;  // beta 0: y is not read (it may hold anything)
      }
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}
