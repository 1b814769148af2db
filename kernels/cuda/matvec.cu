// kernels/cuda/matvec.cu: one warp per weight row; lanes take 32-value chunks (quantized types, decoded with
// kernels/common/dequant_block.h) or 8-value vectors (F16, BF16, F32) in turn, and the warp sums at the end.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/common/dequant_block.h"
#include "kernels/common/round_activations.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/matvec.h"

namespace pginfer::cuda {

namespace {

// Rows per block (one warp each).
constexpr int kWarps = 8;

// Decodes chunk c of a row of quantized type T.
template <TensorType T>
__device__ __forceinline__ void chunk_of(const uint8_t* row, int64_t c, float* v) {
  if constexpr (T == TensorType::Q8_0) dequant_chunk_q8_0(row, c, v);
  else if constexpr (T == TensorType::Q4_0) dequant_chunk_q4_0(row, c, v);
  else if constexpr (T == TensorType::Q4_K) dequant_chunk_q4_k(row, c, v);
  else if constexpr (T == TensorType::Q5_K) dequant_chunk_q5_k(row, c, v);
  else dequant_chunk_q6_k(row, c, v);
}

// Values 8g .. 8g+7 of a row of float type T, with 16-byte loads.
template <TensorType T>
__device__ __forceinline__ void vec8_of(const uint8_t* row, int64_t g, float* v) {
  if constexpr (T == TensorType::F32) {
    const float4* p = reinterpret_cast<const float4*>(row) + 2 * g;
    const float4 a = p[0], b = p[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    const uint4 u = reinterpret_cast<const uint4*>(row)[g];
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
    for (int j = 0; j < 4; ++j) {
      if constexpr (T == TensorType::F16) {
        v[2 * j] = hd_fp16_to_fp32((uint16_t)(w[j] & 0xffffu));
        v[2 * j + 1] = hd_fp16_to_fp32((uint16_t)(w[j] >> 16));
      } else {
        v[2 * j] = __uint_as_float(w[j] << 16);
        v[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
      }
    }
  }
}

// acc += dot(v[0..4n), x[0..4n)) with 16-byte loads of x, each x value first rounded to R (F16, BF16 or,
// for none, F32).
template <int N4, TensorType R = TensorType::F32>
__device__ __forceinline__ float dot4(const float* v, const float* x) {
  const float4* xp = reinterpret_cast<const float4*>(x);
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < N4; ++j) {
    float4 a = xp[j];
    if constexpr (R != TensorType::F32) {
      a.x = round_value(R, a.x), a.y = round_value(R, a.y), a.z = round_value(R, a.z), a.w = round_value(R, a.w);
    }
    s += v[4 * j] * a.x + v[4 * j + 1] * a.y + v[4 * j + 2] * a.z + v[4 * j + 3] * a.w;
  }
  return s;
}

template <TensorType T, int NT>
__global__ void __launch_bounds__(kWarps * 32)
    matvec_kernel(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t k, const float* x, int n_tokens,
                  const float* bias, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t r = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  if (r >= rows) return;  // the whole warp leaves together
  const uint8_t* row = w + r * row_bytes;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  constexpr bool kFloat = T == TensorType::F32 || T == TensorType::F16 || T == TensorType::BF16;
  if constexpr (kFloat) {
    // F16 and BF16 weights see activations rounded to their own type, as on the CPU (fused here).
    constexpr TensorType R = T == TensorType::F32 ? TensorType::F32 : T;
#pragma unroll 4
    for (int64_t g = lane; g < k / 8; g += 32) {
      float v[8];
      vec8_of<T>(row, g, v);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (NT == 1 || t < n_tokens) acc[t] += dot4<2, R>(v, x + t * k + 8 * g);
      }
    }
  } else {
    for (int64_t c = lane; c < k / kChunk; c += 32) {
      float v[kChunk];
      chunk_of<T>(row, c, v);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (NT == 1 || t < n_tokens) acc[t] += dot4<kChunk / 4>(v, x + t * k + kChunk * c);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0 && (NT == 1 || t < n_tokens)) y[t * rows + r] = bias ? s + bias[r] : s;
  }
}

template <TensorType T>
void launch(const void* w, size_t row_bytes, int64_t rows, int64_t k, const float* x, int n_tokens,
            const float* bias, float* y, cudaStream_t stream) {
  const unsigned grid = (unsigned)((rows + kWarps - 1) / kWarps);
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  if (n_tokens == 1) {
    matvec_kernel<T, 1><<<grid, kWarps * 32, 0, stream>>>(wb, row_bytes, rows, k, x, 1, bias, y);
  } else {
    matvec_kernel<T, 8><<<grid, kWarps * 32, 0, stream>>>(wb, row_bytes, rows, k, x, n_tokens, bias, y);
  }
}

}  // namespace

bool matvec(TensorType type, const void* w, size_t row_bytes, int64_t rows, int64_t k, const float* x,
            int64_t n_tokens, const float* bias, float* y, cudaStream_t stream) {
  if (k % kChunk != 0) return false;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += 8) {
    const int nt = (int)(n_tokens - t0 < 8 ? n_tokens - t0 : 8);
    const float* xt = x + t0 * k;
    float* yt = y + t0 * rows;
    switch (type) {
      case TensorType::F32: launch<TensorType::F32>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::F16: launch<TensorType::F16>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::BF16: launch<TensorType::BF16>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::Q8_0: launch<TensorType::Q8_0>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::Q4_0: launch<TensorType::Q4_0>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::Q4_K: launch<TensorType::Q4_K>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::Q5_K: launch<TensorType::Q5_K>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      case TensorType::Q6_K: launch<TensorType::Q6_K>(w, row_bytes, rows, k, xt, nt, bias, yt, stream); break;
      default: return false;
    }
  }
  return true;
}

}  // namespace pginfer::cuda
