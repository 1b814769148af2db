// tests/cuda_emu/include/mma.h: WMMA (nvcuda::wmma) on the emulated device. A fragment holds its whole tile in every
// lane (the hardware spreads it over the warp; the kernels here never index a fragment's elements), the operations
// wait for every lane of the warp as the hardware's do, check the alignment the hardware requires (32-byte tile
// addresses, leading dimensions of 16 bytes), and multiply F16 values exactly into float sums.
#pragma once

#include <cstdint>
#include <type_traits>

#include "tests/cuda_emu/cuda_emu.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// A tile of M x K (matrix_a), K x N (matrix_b) or M x N (accumulator) values, row-major, as floats.
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int kRows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int kCols = std::is_same_v<Use, matrix_a> ? K : N;
  float v[kRows * kCols];
};

namespace detail {

// Waits for the warp, and checks a tile's address and leading dimension (in elements of `bytes` each).
inline void enter(const void* p, unsigned ldm, unsigned bytes) {
  pginfer_emu::warp_barrier();
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) pginfer_emu::kernel_fault(716, "WMMA tile address not 32-byte aligned");
  if ((ldm * bytes) % 16 != 0) pginfer_emu::kernel_fault(1, "WMMA leading dimension not a multiple of 16 bytes");
}

inline float value(const __half& h) { return __half2float(h); }
inline float value(const float& f) { return f; }

// Reads a kRows x kCols tile at p: element (r, c) at p[r * ldm + c] (row-major) or p[c * ldm + r].
template <class F, class T>
void load(F& f, const T* p, unsigned ldm, bool row) {
  enter(p, ldm, sizeof(T));
  for (int r = 0; r < F::kRows; ++r) {
    for (int c = 0; c < F::kCols; ++c) f.v[r * F::kCols + c] = value(row ? p[r * ldm + c] : p[c * ldm + r]);
  }
}

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  detail::load(f, p, ldm, std::is_same_v<Layout, row_major>);
}

template <int M, int N, int K, class T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  detail::load(f, p, ldm, layout == mem_row_major);
}

template <int M, int N, int K, class T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  using F = fragment<accumulator, M, N, K, T>;
  detail::enter(p, ldm, sizeof(T));
  for (int r = 0; r < F::kRows; ++r) {
    for (int c = 0; c < F::kCols; ++c) {
      (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.v[r * F::kCols + c];
    }
  }
}

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float x) {
  pginfer_emu::warp_barrier();
  for (float& e : f.v) e = x;
}

// d = a b + c, each sum in float in the order of k.
template <int M, int N, int K, class TA, class LA, class LB, class TC>
void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TA, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  pginfer_emu::warp_barrier();
  float out[M * N];
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      float s = c.v[i * N + j];
      for (int l = 0; l < K; ++l) s += a.v[i * K + l] * b.v[l * N + j];
      out[i * N + j] = s;
    }
  }
  for (int i = 0; i < M * N; ++i) d.v[i] = out[i];
}

}  // namespace nvcuda::wmma
