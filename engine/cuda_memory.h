// engine/cuda_memory.h: the CUDA backend's memory (engine/cuda_backend.cpp, in the CUDA module only): device
// allocations freed with their owner, the page-locked staging memory uploads are copied from, activation buffers,
// and the F16 keys and values of KV caches and pools.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/backend.h"

namespace pginfer {

// A number that no other KV cache or pool of the process gets: recordings name caches by it, since an address
// may be reused.
inline uint64_t next_cache_serial() {
  static std::atomic<uint64_t> last{0};
  return ++last;
}

// Device memory freed with the object.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory() { reset(); }
  cudaError_t allocate(size_t bytes) {
    reset();
    cudaError_t e = cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      cudaGetLastError();  // an allocation failure is not sticky: clear it
      return e;
    }
    bytes_ = bytes;
    return cudaSuccess;
  }
  void reset() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory that uploads are copied from: a cudaMemcpyAsync from pageable memory waits for the
// stream, one from here does not. Handed out in order; the copies read it later, when the stream reaches them, so
// it is reclaimed only as a whole, once the stream has been synchronized (the backend calls reset() then).
class PinnedStaging {
 public:
  PinnedStaging() = default;
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  ~PinnedStaging() {
    if (base_) cudaFreeHost(base_);
  }
  // `bytes` of staging memory, or null when what is left is too small.
  void* take(size_t bytes) {
    bytes = (bytes + 15) / 16 * 16;
    if (base_ == nullptr || capacity_ - used_ < bytes) return nullptr;
    void* p = static_cast<uint8_t*>(base_) + used_;
    used_ += bytes;
    return p;
  }
  // Everything handed out is free again (no copy from it is pending).
  void reset() { used_ = 0; }
  // Makes room for `bytes` at least, reallocating when needed; only while no copy from it is pending. False when
  // page-locked memory cannot be had.
  bool reserve(size_t bytes) {
    if (capacity_ >= bytes) return true;
    const size_t want = std::max<size_t>({bytes, 2 * capacity_, size_t{1} << 20});
    if (base_) cudaFreeHost(base_);
    base_ = nullptr;
    capacity_ = used_ = 0;
    if (cudaMallocHost(&base_, want) != cudaSuccess) {
      cudaGetLastError();  // an allocation failure is not sticky: clear it
      base_ = nullptr;
      return false;
    }
    capacity_ = want;
    return true;
  }

 private:
  void* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

class CudaBuffer : public ActivationBuffer {
 public:
  explicit CudaBuffer(int64_t n) : n_(n) {}
  DeviceMemory mem;
  float* data() override { return static_cast<float*>(mem.get()); }
  int64_t size() const override { return n_; }

 private:
  int64_t n_;
};

// Keys and values of every layer as F16: per layer a [slots][kv_dim] array each, in one allocation.
struct KvLayers {
  KvLayers(int64_t n_layer, int64_t slots, int64_t kv_dim) : n_layer(n_layer), slots(slots), kv_dim(kv_dim) {}
  // Bytes of keys and values of every layer; 0 when the shape is empty or its size overflows.
  size_t bytes() const {
    size_t n = 0;
    if (n_layer <= 0 || slots <= 0 || kv_dim <= 0 ||
        __builtin_mul_overflow((size_t)n_layer, (size_t)slots, &n) || __builtin_mul_overflow(n, (size_t)kv_dim, &n) ||
        __builtin_mul_overflow(n, 2 * sizeof(uint16_t), &n)) {
      return 0;
    }
    return n;
  }
  // Allocates the arrays; false when the device has no room.
  bool allocate() { return bytes() > 0 && mem.allocate(bytes()) == cudaSuccess; }
  uint16_t* keys(int64_t layer) { return base() + (2 * layer) * slots * kv_dim; }
  uint16_t* values(int64_t layer) { return base() + (2 * layer + 1) * slots * kv_dim; }

  int64_t n_layer, slots, kv_dim;
  DeviceMemory mem;
  const uint64_t serial = next_cache_serial();

 private:
  uint16_t* base() { return static_cast<uint16_t*>(mem.get()); }
};

// One sequence's cache: slot = position.
class CudaKvCache : public KvCache {
 public:
  CudaKvCache(int64_t n_layer, int64_t capacity, int64_t kv_dim) : kv(n_layer, capacity, kv_dim) {}
  int64_t capacity() const override { return kv.slots; }
  KvLayers kv;
};

// The paged cache's memory: n_blocks * block_size slots per layer, handed out by block (PagedKvCache views).
class CudaKvPool : public KvPool {
 public:
  CudaKvPool(int64_t n_layer, int64_t n_blocks, int64_t block_size, int64_t kv_dim)
      : kv(n_layer, n_blocks * block_size, kv_dim), n_blocks_(n_blocks), block_size_(block_size) {
    while ((int64_t{1} << shift_) < block_size) ++shift_;
  }
  int64_t n_blocks() const override { return n_blocks_; }
  int64_t block_size() const override { return block_size_; }
  // log2 of block_size().
  int block_shift() const { return shift_; }
  KvLayers kv;

 private:
  int64_t n_blocks_, block_size_;
  int shift_ = 0;
};

}  // namespace pginfer
