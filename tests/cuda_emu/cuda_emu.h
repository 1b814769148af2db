// tests/cuda_emu/cuda_emu.h: a CUDA device emulated on the CPU, for tests only. It lets the GPU suites (tests/gpu)
// run the real CUDA backend (engine/cuda_backend.cpp and kernels/cuda/*.cu, compiled as C++ with the headers of
// tests/cuda_emu/include) on a machine without a GPU: the module libpginfer_cuda_emu.so, loaded through
// PG_INFER_CUDA_MODULE.
//
// What it models:
// - Kernels: every thread of a block is a fiber (its own stack), run until it reaches a barrier: __syncthreads()
//   waits for every live thread of the block; __syncwarp(), the shuffles and the WMMA operations for the lanes
//   their mask names (a full warp for WMMA), which must all wait there with the same mask. A barrier that cannot be
//   reached (threads waiting at different barriers, a mask naming an exited lane) is a launch failure. Blocks run
//   on the launching thread and helper threads (PGI_EMU_THREADS, default the cores), one block at a time per
//   thread: static __shared__ variables are thread_local function statics. Dynamic shared memory
//   (PGI_DYNAMIC_SHARED) and new device memory are filled with NaN bytes, so a read of what nothing wrote shows.
// - Checks the hardware makes: launch shapes, dynamic shared memory beyond 48 KiB without cudaFuncSetAttribute on
//   the current device, __ldg and WMMA addresses misaligned for their type, operations a stream capture forbids
//   (synchronous copies, allocations, synchronisations while the thread captures) and device memory running out.
// - Streams run their work at once, in order, except while captured: then kernels, copies and cuBLAS products are
//   recorded into the graph, and a graph launch runs them again, reading host memory as it is at that moment.
// - cuBLAS: cublasGemmEx for F32, F16 and BF16 operands with float accumulation, in a plain loop.
// What it does not model: real concurrency between the threads of a block (a race that needs it stays hidden),
// timing, early launch (kernels launched early run as usual), a kernel's out-of-bounds accesses (they hit host
// memory). With PGI_EMU_PROFILE set, the time spent in each kernel is printed at exit.
#pragma once

#include <math.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#include "kernels/cpu/fp16.h"

// CUDA's qualifiers, as plain C++.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local  // one block at a time per thread
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

// Built-in vector types.
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// The running thread's coordinates, set by the scheduler before it switches to a fiber.
inline thread_local uint3 threadIdx, blockIdx, blockDim, gridDim;

namespace pginfer_emu {

// Waits for every live thread of the block (__syncthreads).
void block_barrier();
// Waits until every lane named by `mask` (the running lane among them) waits with the same mask: __syncwarp, the
// shuffles and the WMMA operations (a full warp). A mask naming a lane that has exited is a fault.
void warp_barrier(unsigned mask = 0xffffffffu);
// A shuffle's exchange: waits as warp_barrier(mask), every lane named passing its own `bits`, and returns those of
// lane `src` of the warp (which the mask must name), taken when the last lane arrives.
uint64_t warp_exchange(unsigned mask, uint64_t bits, int src);
// The running block's dynamic shared memory.
unsigned char* dynamic_shared();
// Records a failure of the running kernel (a misaligned address, say): the launch fails with `error`.
void kernel_fault(int error, const char* what);

// Runs body(kernel) over the grid: `kernel` names the function (for its attributes), `body` runs one thread.
void launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes, void* stream,
            std::function<void()> body);

// The value of lane `src` of the running lane's warp, every lane named by `mask` passing its own `v`.
template <class T>
T exchange(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffles of up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_exchange(mask, bits, src & 31);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace pginfer_emu

inline void __syncthreads() { pginfer_emu::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { pginfer_emu::warp_barrier(mask); }

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int = 32) {
  return pginfer_emu::exchange(mask, v, (int)(threadIdx.x % 32) ^ lane_mask);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int = 32) {
  return pginfer_emu::exchange(mask, v, src);
}

// A read-only load: checked for the alignment of its type, as the hardware faults on a misaligned one.
template <class T>
T __ldg(const T* p) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) pginfer_emu::kernel_fault(716, "misaligned __ldg");
  return *p;
}

// Atomics: blocks run on several threads (global memory); a block's threads are fibers of one.
template <class T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}

// The math functions device code calls unqualified.
using std::isfinite;
using std::isinf;
using std::isnan;

// min and max of device code, for mixed integer types as CUDA's overloads take them.
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}

inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline int __float2int_rn(float f) { return (int)std::nearbyint(f); }

// cuda_fp16.h and cuda_bf16.h: 16-bit floats, converted with round-to-nearest-even (kernels/cpu/fp16.h).
struct __half {
  uint16_t bits = 0;
};
struct alignas(4) __half2 {
  __half x, y;
};
struct __nv_bfloat16 {
  uint16_t bits = 0;
};
inline __half __float2half_rn(float f) { return {pginfer::fp32_to_fp16(f)}; }
inline float __half2float(__half h) { return pginfer::fp16_to_fp32(h.bits); }
inline __half __ushort_as_half(unsigned short u) { return {u}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __half2 __floats2half2_rn(float a, float b) { return {__float2half_rn(a), __float2half_rn(b)}; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return {pginfer::fp32_to_bf16(f)}; }
inline float __bfloat162float(__nv_bfloat16 h) { return pginfer::bf16_to_fp32(h.bits); }
