// kernels/cuda/matvec.cu: one warp per weight row, the warp summing its lanes' shares at the end. Decoding reads
// every weight once per token, so the kernels are written for bytes in flight: each lane issues several
// independent loads (kLoads) before it uses any, and a warp's loads cover contiguous bytes of its row.
// - F16, BF16, F32: 16-byte vectors, lane i taking vectors i, i + 32, ...
// - Q8_0 (34-byte blocks, only 2-byte aligned): four lanes per block, eight quants each, so a warp reads eight
//   consecutive blocks (272 bytes) per step with 2-byte loads, and decodes them in registers.
// - Q4_0, Q4_K, Q5_K, Q6_K: lane i decodes 32-value chunks i, i + 32, ... with kernels/common/dequant_block.h.
// Half values are converted by the device's instructions (the same values as dequant_block.h's conversion but
// for the payloads of NaNs). One launch may cover several matrices read with the same activations (their rows one
// after the other), add its results to the output, or read the rows of gate and up together and write
// swiglu(gate, up) (MatvecJob).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/common/dequant_block.h"
#include "kernels/common/elementwise.h"
#include "kernels/common/round_activations.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/matvec.h"

namespace pginfer::cuda {

namespace {

// Rows per block (one warp each).
constexpr int kWarps = 4;
// Most tokens per launch (a register accumulator each).
constexpr int kMaxTokens = 8;

// Independent loads a lane issues before using them: more for one token, whose lanes hold fewer accumulators.
template <int NT>
constexpr int kLoads = NT == 1 ? 8 : 4;

// Float x rounded as the CPU's products round activations for weights of type T (F16, BF16; F32: as is).
template <TensorType T>
__device__ __forceinline__ float round_for(float a) {
  if constexpr (T == TensorType::F16) return __half2float(__float2half_rn(a));
  else if constexpr (T == TensorType::BF16) return round_value(TensorType::BF16, a);
  else return a;
}

// dot(v[0..4*N4), x[0..4*N4)) with 16-byte loads of x, each x value first rounded for weights of type T.
template <int N4, TensorType T = TensorType::F32>
__device__ __forceinline__ float dot4(const float* v, const float* x) {
  const float4* xp = reinterpret_cast<const float4*>(x);
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < N4; ++j) {
    float4 a = __ldg(xp + j);
    a.x = round_for<T>(a.x), a.y = round_for<T>(a.y), a.z = round_for<T>(a.z), a.w = round_for<T>(a.w);
    s += v[4 * j] * a.x + v[4 * j + 1] * a.y + v[4 * j + 2] * a.z + v[4 * j + 3] * a.w;
  }
  return s;
}

// Values per 16-byte vector of a row of float type T.
template <TensorType T>
constexpr int kPerVector = T == TensorType::F32 ? 4 : 8;

// The values of a 16-byte vector of float type T.
template <TensorType T>
__device__ __forceinline__ void decode_vector(const uint4& u, float* v) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (T == TensorType::F32) {
      v[j] = __uint_as_float(w[j]);
    } else if constexpr (T == TensorType::F16) {
      v[2 * j] = __half2float(__ushort_as_half((unsigned short)(w[j] & 0xffffu)));
      v[2 * j + 1] = __half2float(__ushort_as_half((unsigned short)(w[j] >> 16)));
    } else {
      v[2 * j] = __uint_as_float(w[j] << 16);
      v[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
  }
}

// F32, F16, BF16 weights (rows 16-byte aligned, as k % 32 == 0 makes them): the activations rounded to the
// weights' type on the fly, as on the CPU. Adds the lane's share of each token's dot product with `row` to acc.
template <TensorType T, int NT>
__device__ __forceinline__ void row_dot_float(const uint8_t* row_ptr, int64_t k, const float* x, int n_tokens, int lane,
                                              float* acc) {
  constexpr int P = kPerVector<T>, L = kLoads<NT>;
  const uint4* row = reinterpret_cast<const uint4*>(row_ptr);
  const int64_t n_vectors = k / P;
  for (int64_t g0 = lane; g0 < n_vectors; g0 += 32 * L) {
    uint4 u[L];
#pragma unroll
    for (int i = 0; i < L; ++i) {
      if (g0 + 32 * i < n_vectors) u[i] = __ldg(row + g0 + 32 * i);
    }
#pragma unroll
    for (int i = 0; i < L; ++i) {
      const int64_t g = g0 + 32 * i;
      if (g < n_vectors) {
        float v[P];
        decode_vector<T>(u[i], v);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          if (NT == 1 || t < n_tokens) acc[t] += dot4<P / 4, T>(v, x + t * k + P * g);
        }
      }
    }
  }
}

// The 8 activations at x (16-byte aligned) of the 4 lanes that share a 32-value block (lanes 4i .. 4i + 3, the
// lane's 8 values at offset 8 * (lane % 4) of the block), as the block's Q8_0 quantization decodes them
// (kernels/common/round_activations.h): the block's largest magnitude is gathered from the four lanes, which must
// all call this together.
__device__ __forceinline__ void load_rounded_q8_0(const float* x, int lane, float* xs) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(x)), b = __ldg(reinterpret_cast<const float4*>(x) + 1);
  xs[0] = a.x, xs[1] = a.y, xs[2] = a.z, xs[3] = a.w, xs[4] = b.x, xs[5] = b.y, xs[6] = b.z, xs[7] = b.w;
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) amax = fabsf(xs[j]) > amax ? fabsf(xs[j]) : amax;
  const unsigned group = 0xfu << (lane & ~3);
  amax = fmaxf(amax, __shfl_xor_sync(group, amax, 1));
  amax = fmaxf(amax, __shfl_xor_sync(group, amax, 2));
  const Q8_0Rounding r = q8_0_rounding(amax);
#pragma unroll
  for (int j = 0; j < 8; ++j) xs[j] = q8_0_value(xs[j], r);
}

// v . xs over 8 values, in dot4's order.
__device__ __forceinline__ float dot8(const float* v, const float* xs) {
  float s = 0.0f;
  s += v[0] * xs[0] + v[1] * xs[1] + v[2] * xs[2] + v[3] * xs[3];
  s += v[4] * xs[4] + v[5] * xs[5] + v[6] * xs[6] + v[7] * xs[7];
  return s;
}

// Q8_0 weights: lane l takes quants 8 * (l % 4) .. + 7 of blocks l / 4, l / 4 + 8, ...; the block's scale is a
// load every four lanes share. The activations are rounded here (load_rounded_q8_0).
template <int NT>
__device__ __forceinline__ void row_dot_q8_0(const uint8_t* row_ptr, int64_t k, const float* x, int n_tokens, int lane,
                                             float* acc) {
  constexpr int L = kLoads<NT>;
  const int part = lane % 4;
  // As halfwords: a block is 17 of them, the scale first.
  const uint16_t* row = reinterpret_cast<const uint16_t*>(row_ptr);
  const int64_t n_blocks = k / 32;
  for (int64_t b0 = lane / 4; b0 < n_blocks; b0 += 8 * L) {
    uint16_t d[L], q[L][4];
#pragma unroll
    for (int i = 0; i < L; ++i) {
      const int64_t b = b0 + 8 * i;
      if (b < n_blocks) {
        const uint16_t* blk = row + 17 * b;
        d[i] = __ldg(blk);
#pragma unroll
        for (int j = 0; j < 4; ++j) q[i][j] = __ldg(blk + 1 + 4 * part + j);
      }
    }
#pragma unroll
    for (int i = 0; i < L; ++i) {
      const int64_t b = b0 + 8 * i;
      if (b < n_blocks) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          v[2 * j] = (float)(int8_t)(q[i][j] & 0xffu);
          v[2 * j + 1] = (float)(int8_t)(q[i][j] >> 8);
        }
        const float scale = __half2float(__ushort_as_half(d[i]));
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          if (NT == 1 || t < n_tokens) {
            float xs[8];
            load_rounded_q8_0(x + t * k + 32 * b + 8 * part, lane, xs);
            acc[t] += scale * dot8(v, xs);
          }
        }
      }
    }
  }
}

// Decodes chunk c of a row of quantized type T.
template <TensorType T>
__device__ __forceinline__ void chunk_of(const uint8_t* row, int64_t c, float* v) {
  if constexpr (T == TensorType::Q4_0) dequant_chunk_q4_0(row, c, v);
  else if constexpr (T == TensorType::Q4_K) dequant_chunk_q4_k(row, c, v);
  else if constexpr (T == TensorType::Q5_K) dequant_chunk_q5_k(row, c, v);
  else dequant_chunk_q6_k(row, c, v);
}

// The 32 activations of chunk c at x (16-byte aligned), as the CPU's products round them for weights of type T:
// Q8_0 for Q4_0 (the chunk is a whole block), Q8_K for the K-quants (a 256-value block spans the chunks of lanes
// 8i .. 8i + 7, whose first value of largest magnitude is found among them; those lanes must call this together).
template <TensorType T>
__device__ __forceinline__ void load_rounded_chunk(const float* x, int64_t c, int lane, float* xs) {
#pragma unroll
  for (int j = 0; j < kChunk / 4; ++j) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(x) + j);
    xs[4 * j] = a.x, xs[4 * j + 1] = a.y, xs[4 * j + 2] = a.z, xs[4 * j + 3] = a.w;
  }
  if constexpr (T == TensorType::Q4_0) {
    round_block_q8_0(xs, xs);
  } else {
    // The block's first value of largest magnitude: each lane's own first, then the lanes' by index.
    float amax = 0.0f, max = 0.0f;
    int64_t at = INT64_MAX;
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const float ax = fabsf(xs[j]);
      if (ax > amax) amax = ax, max = xs[j], at = c * kChunk + j;
    }
    const unsigned group = 0xffu << (lane & ~7);
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) {
      const float other_amax = __shfl_xor_sync(group, amax, o), other_max = __shfl_xor_sync(group, max, o);
      const int64_t other_at = __shfl_xor_sync(group, at, o);
      if (other_amax > amax || (other_amax == amax && other_at < at)) {
        amax = other_amax, max = other_max, at = other_at;
      }
    }
    if (amax == 0.0f) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) xs[j] = 0.0f;
      return;
    }
    const Q8_KRounding r = q8_k_rounding(max);
#pragma unroll
    for (int j = 0; j < kChunk; ++j) xs[j] = q8_k_value(xs[j], r);
  }
}

// Q4_0 and the K-quants: a lane per 32-value chunk; the activations are rounded here (load_rounded_chunk).
template <TensorType T, int NT>
__device__ __forceinline__ void row_dot_chunks(const uint8_t* row, int64_t k, const float* x, int n_tokens, int lane,
                                               float* acc) {
  for (int64_t c = lane; c < k / kChunk; c += 32) {
    float v[kChunk];
    chunk_of<T>(row, c, v);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (NT == 1 || t < n_tokens) {
        float xs[kChunk];
        load_rounded_chunk<T>(x + t * k + kChunk * c, c, lane, xs);
        float s = 0.0f;  // dot4's order
#pragma unroll
        for (int j = 0; j < kChunk; j += 4) {
          s += v[j] * xs[j] + v[j + 1] * xs[j + 1] + v[j + 2] * xs[j + 2] + v[j + 3] * xs[j + 3];
        }
        acc[t] += s;
      }
    }
  }
}

// The lane's share of the dot products of `row` (of type T) with each token of x, added to acc.
template <TensorType T, int NT>
__device__ __forceinline__ void row_dot(const uint8_t* row, int64_t k, const float* x, int n_tokens, int lane,
                                        float* acc) {
  if constexpr (T == TensorType::F32 || T == TensorType::F16 || T == TensorType::BF16) {
    row_dot_float<T, NT>(row, k, x, n_tokens, lane, acc);
  } else if constexpr (T == TensorType::Q8_0) {
    row_dot_q8_0<NT>(row, k, x, n_tokens, lane, acc);
  } else {
    row_dot_chunks<T, NT>(row, k, x, n_tokens, lane, acc);
  }
}

// What a launch computes (MatvecJob, with device pointers): a warp per row of the parts' rows taken one after
// the other, or per row index of the gate and up parts together (swiglu).
struct Launch {
  const uint8_t* w[kMaxMatvecParts];
  int64_t rows[kMaxMatvecParts];
  const float* bias[kMaxMatvecParts];
  float* y[kMaxMatvecParts];
  int n_parts;
  size_t row_bytes;
  int64_t k;
  const float* x;
  int n_tokens;
  bool accumulate, swiglu;
};

// a[p] of a kernel parameter's array, selected without indexing it at run time (which copies it to the stack).
template <class V>
__device__ __forceinline__ V pick(const V (&a)[kMaxMatvecParts], int p) {
  static_assert(kMaxMatvecParts == 3, "one choice per part");
  return p == 0 ? a[0] : p == 1 ? a[1] : a[2];
}

template <TensorType T, int NT>
__global__ void __launch_bounds__(kWarps * 32) matvec_kernel(Launch j) {
  early_launch_sync();
  const int lane = threadIdx.x % 32;
  int64_t r = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  if (j.swiglu) {
    const int64_t rows = j.rows[0];
    if (r >= rows) return;  // the whole warp leaves together
    float g[NT], u[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) g[t] = u[t] = 0.0f;
    row_dot<T, NT>(j.w[0] + r * j.row_bytes, j.k, j.x, j.n_tokens, lane, g);
    row_dot<T, NT>(j.w[1] + r * j.row_bytes, j.k, j.x, j.n_tokens, lane, u);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float gs = warp_sum(g[t]), us = warp_sum(u[t]);
      if (lane == 0 && (NT == 1 || t < j.n_tokens)) {
        if (j.bias[0]) gs += j.bias[0][r];
        if (j.bias[1]) us += j.bias[1][r];
        j.y[0][t * rows + r] = swiglu_value(gs, us);
      }
    }
    return;
  }
  int p = 0;
  if (j.n_parts > 1 && r >= j.rows[0]) r -= j.rows[0], p = 1;
  if (j.n_parts > 2 && p == 1 && r >= j.rows[1]) r -= j.rows[1], p = 2;
  const int64_t rows = pick(j.rows, p);
  if (r >= rows) return;
  const float* bias = pick(j.bias, p);
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  row_dot<T, NT>(pick(j.w, p) + r * j.row_bytes, j.k, j.x, j.n_tokens, lane, acc);
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float s = warp_sum(acc[t]);
    if (lane == 0 && (NT == 1 || t < j.n_tokens)) {
      if (bias) s += bias[r];
      float* out = pick(j.y, p) + t * rows + r;
      *out = j.accumulate ? *out + s : s;
    }
  }
}

// Launches the kernel for weights of type T: a warp per row (per row index with swiglu).
template <TensorType T>
void launch(const Launch& j, cudaStream_t stream) {
  int64_t warps = j.rows[0];
  if (!j.swiglu) {
    for (int p = 1; p < j.n_parts; ++p) warps += j.rows[p];
  }
  const unsigned grid = (unsigned)((warps + kWarps - 1) / kWarps);
  if (j.n_tokens == 1) {
    launch_kernel(matvec_kernel<T, 1>, grid, kWarps * 32, 0, stream, j);
  } else {
    launch_kernel(matvec_kernel<T, kMaxTokens>, grid, kWarps * 32, 0, stream, j);
  }
}

// Whether the kernels can run a job: rows whole blocks of its type (the K-quants' Q8_K rounding has 8 lanes share a
// block of 256), one to kMaxMatvecParts parts of rows, and a swiglu of two equal parts without accumulation.
bool runnable(const MatvecJob& job) {
  const bool k_quant = job.type == TensorType::Q4_K || job.type == TensorType::Q5_K || job.type == TensorType::Q6_K;
  if (job.k <= 0 || job.k % (k_quant ? 256 : kChunk) != 0 || job.n_tokens <= 0 || job.n_parts < 1 ||
      job.n_parts > kMaxMatvecParts) {
    return false;
  }
  for (int p = 0; p < job.n_parts; ++p) {
    if (job.parts[p].rows <= 0 || job.parts[p].w == nullptr || job.parts[p].y == nullptr) return false;
  }
  return !job.swiglu || (job.n_parts == 2 && job.parts[1].rows == job.parts[0].rows && !job.accumulate);
}

}  // namespace

bool matvec(const MatvecJob& job, cudaStream_t stream) {
  if (!runnable(job)) return false;
  for (int64_t t0 = 0; t0 < job.n_tokens; t0 += kMaxTokens) {
    Launch j{};
    j.n_parts = job.n_parts;
    j.row_bytes = job.row_bytes;
    j.k = job.k;
    j.x = job.x + t0 * job.k;
    j.n_tokens = (int)(job.n_tokens - t0 < kMaxTokens ? job.n_tokens - t0 : kMaxTokens);
    j.accumulate = job.accumulate;
    j.swiglu = job.swiglu;
    for (int p = 0; p < job.n_parts; ++p) {
      j.w[p] = static_cast<const uint8_t*>(job.parts[p].w);
      j.rows[p] = job.parts[p].rows;
      j.bias[p] = job.parts[p].bias;
      j.y[p] = job.parts[p].y + t0 * job.parts[p].rows;
    }
    switch (job.type) {
      case TensorType::F32: launch<TensorType::F32>(j, stream); break;
      case TensorType::F16: launch<TensorType::F16>(j, stream); break;
      case TensorType::BF16: launch<TensorType::BF16>(j, stream); break;
      case TensorType::Q8_0: launch<TensorType::Q8_0>(j, stream); break;
      case TensorType::Q4_0: launch<TensorType::Q4_0>(j, stream); break;
      case TensorType::Q4_K: launch<TensorType::Q4_K>(j, stream); break;
      case TensorType::Q5_K: launch<TensorType::Q5_K>(j, stream); break;
      case TensorType::Q6_K: launch<TensorType::Q6_K>(j, stream); break;
      default: return false;
    }
  }
  return true;
}

}  // namespace pginfer::cuda
