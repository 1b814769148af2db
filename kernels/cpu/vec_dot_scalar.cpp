// kernels/cpu/vec_dot_scalar.cpp: portable row dots, computing exactly what the AVX2 kernels compute.
//
// Q8_0 follows our block-exact order (kernels/cpu/vec_dot_q8_0.h), which this file defines; the other types
// follow GGML's AVX2 kernels as described below.
// The vector kernels' lanes are emulated with small arrays: the same integer lane sums (exact), the same
// float multiply-adds (std::fma, fused as the vector code is) in the same order, the same reduction trees.
// So on any machine these give GGML's AVX2 results bit for bit, and the tests can compare the SIMD levels
// with this code exactly. (GGML's own non-SIMD build sums in another order; its results differ from these
// in the last bits only.)
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant_impl.h"
#include "kernels/cpu/vec_dot_impl.h"

namespace pginfer {

namespace {

// GGML's hsum_float_8: (hi + lo), then lanes (0+2) + (1+3).
float hsum8(const float* v) {
  float r[4];
  for (int k = 0; k < 4; ++k) r[k] = v[k + 4] + v[k];
  return (r[0] + r[2]) + (r[1] + r[3]);
}

// GGML_F32x8_REDUCE on 4 accumulators of 8 lanes: (0+2, 1+3), 0+1, halves, then pairs (0+1) + (2+3).
float reduce_f32x8(float s[4][8]) {
  float t[4];
  for (int l = 0; l < 8; ++l) {
    s[0][l] = s[0][l] + s[2][l];
    s[1][l] = s[1][l] + s[3][l];
    s[0][l] = s[0][l] + s[1][l];
  }
  for (int k = 0; k < 4; ++k) t[k] = s[0][k] + s[0][k + 4];
  return (t[0] + t[1]) + (t[2] + t[3]);
}

float dot_f32_row(int64_t n, const float* x, const float* y) {
  float s[4][8] = {};
  const int64_t np = n & ~(int64_t)31;
  for (int64_t i = 0; i < np; i += 32) {
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 8; ++l) s[j][l] = std::fma(x[i + 8 * j + l], y[i + 8 * j + l], s[j][l]);
  }
  float sumf = reduce_f32x8(s);
  // As GCC compiles GGML's AVX2 leftover loop: groups of 8, then one of 4, multiplied then added; the
  // last 0-3 values with fused multiply-adds.
  const int64_t rest = n - np, plain = np + (rest & ~(int64_t)7) + ((rest & 7) >= 4 ? 4 : 0);
  for (int64_t i = np; i < plain; ++i) sumf += x[i] * y[i];
  for (int64_t i = plain; i < n; ++i) sumf = std::fma(x[i], y[i], sumf);
  return sumf;
}

// F16 and BF16 products are exact in float, so fused and separate multiply-adds agree.
float dot_f16_row(int64_t n, const uint16_t* x, const uint16_t* y) {
  float s[4][8] = {};
  const int64_t np = n & ~(int64_t)31;
  for (int64_t i = 0; i < np; i += 32) {
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 8; ++l) s[j][l] += fp16_to_fp32(x[i + 8 * j + l]) * fp16_to_fp32(y[i + 8 * j + l]);
  }
  double sumf = reduce_f32x8(s);
  for (int64_t i = np; i < n; ++i) sumf += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
  return (float)sumf;
}

// GGML's AVX2 BF16 loop: c1..c4, then (c1 + c3) + (c2 + c4) and hsum_float_8.
float dot_bf16_row(int64_t n, const uint16_t* x, const uint16_t* y) {
  float c[4][8] = {};
  const int64_t np = n & ~(int64_t)31;
  for (int64_t i = 0; i < np; i += 32) {
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 8; ++l) c[j][l] += bf16_to_fp32(x[i + 8 * j + l]) * bf16_to_fp32(y[i + 8 * j + l]);
  }
  double sumf = 0;
  if (np > 0) {
    float v[8];
    for (int l = 0; l < 8; ++l) v[l] = (c[0][l] + c[2][l]) + (c[1][l] + c[3][l]);
    sumf += (double)hsum8(v);
  }
  for (int64_t i = np; i < n; ++i) sumf += (double)(bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]));
  return (float)sumf;
}

// Q8_0, in our block-exact order (kernels/cpu/vec_dot_q8_0.h): the exact integer sum of each block's 32
// products, then one fused multiply-add per block.
float dot_q8_0_row(int64_t n, const BlockQ8_0* x, const BlockQ8_0* y) {
  float acc = 0.0f;
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    int32_t s = 0;
    for (int i = 0; i < kQK8_0; ++i) s += x[b].qs[i] * y[b].qs[i];
    acc = std::fma(fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d), (float)s, acc);
  }
  return acc;
}

// Q4_0, in GGML's order: lane l of block b holds the products of values 4l..4l+3.
float dot_q4_0_row(int64_t n, const BlockQ4_0* x, const BlockQ8_0* y) {
  float acc[8] = {};
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    int q[32];
    for (int j = 0; j < 16; ++j) q[j] = (x[b].qs[j] & 0x0f) - 8, q[j + 16] = (x[b].qs[j] >> 4) - 8;
    const float d = fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d);
    for (int l = 0; l < 8; ++l) {
      int32_t s = 0;
      for (int i = 0; i < 4; ++i) s += q[4 * l + i] * y[b].qs[4 * l + i];
      acc[l] = std::fma(d, (float)s, acc[l]);
    }
  }
  return hsum8(acc);
}

// Q4_K and Q5_K: lane l sums, over the 4 chunks of 64 values, scale 2j times the products of values
// 64j+4l..64j+4l+3 and scale 2j+1 times those of values 64j+32+4l..; the mins term as GGML's AVX2 kernel.
template <bool kQ5>
float dot_qk_row(int64_t n, const void* w, const BlockQ8_K* y) {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  const Block* x = static_cast<const Block*>(w);
  float acc[8] = {}, acc_m[4] = {}, summs = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) k_scale_min(j, x[b].scales, &sc[j], &mn[j]);
    int32_t prod[4];
    for (int k = 0; k < 4; ++k) {
      const int q8s0 = y[b].bsums[4 * k] + y[b].bsums[4 * k + 1];
      const int q8s1 = y[b].bsums[4 * k + 2] + y[b].bsums[4 * k + 3];
      prod[k] = mn[2 * k] * q8s0 + mn[2 * k + 1] * q8s1;
    }
    const float dmin = -y[b].d * fp16_to_fp32(x[b].dmin);
    if constexpr (kQ5) {
      summs = std::fma(dmin, (float)(prod[0] + prod[1] + prod[2] + prod[3]), summs);
    } else {
      for (int k = 0; k < 4; ++k) acc_m[k] = std::fma(dmin, (float)prod[k], acc_m[k]);
    }
    int32_t sumi[8] = {};
    for (int j = 0; j < 4; ++j) {
      const uint8_t* q = x[b].qs + 32 * j;
      const int8_t* a = y[b].qs + 64 * j;
      for (int l = 0; l < 8; ++l) {
        int32_t lo = 0, hi = 0;
        for (int i = 4 * l; i < 4 * l + 4; ++i) {
          int vlo = q[i] & 0x0f, vhi = q[i] >> 4;
          if constexpr (kQ5) {
            vlo += ((x[b].qh[i] >> (2 * j)) & 1) << 4;
            vhi += ((x[b].qh[i] >> (2 * j + 1)) & 1) << 4;
          }
          lo += vlo * a[i];
          hi += vhi * a[i + 32];
        }
        sumi[l] += sc[2 * j] * lo + sc[2 * j + 1] * hi;
      }
    }
    const float d = y[b].d * fp16_to_fp32(x[b].d);
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(d, (float)sumi[l], acc[l]);
  }
  if constexpr (kQ5) return hsum8(acc) + summs;
  return hsum8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]));
}

// Q6_K: lane l of the vector of values 128c+32k.. sums scale (8c + 2k + l/4) times the products of the
// unsigned 6-bit quants of values 128c+32k+4l..+3; then GGML subtracts the -32 offset through the block
// sums: lane m loses 32 * (bsums[2m] * scale[2m] + bsums[2m+1] * scale[2m+1]).
float dot_q6k_row(int64_t n, const BlockQ6_K* x, const BlockQ8_K* y) {
  float acc[8] = {};
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int q[kQK_K];
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    for (int c = 0; c < kQK_K; c += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        q[c + l] = (ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4);
        q[c + l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
        q[c + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        q[c + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
      }
    }
    int32_t sumi[8] = {};
    for (int v = 0; v < 8; ++v) {  // v = 4c + k: values 32v..32v+31
      for (int l = 0; l < 8; ++l) {
        int32_t s = 0;
        for (int i = 32 * v + 4 * l; i < 32 * v + 4 * l + 4; ++i) s += q[i] * y[b].qs[i];
        sumi[l] += x[b].scales[2 * v + l / 4] * s;
      }
    }
    for (int m = 0; m < 8; ++m) {
      sumi[m] -= 32 * (y[b].bsums[2 * m] * x[b].scales[2 * m] + y[b].bsums[2 * m + 1] * x[b].scales[2 * m + 1]);
    }
    const float d = y[b].d * fp16_to_fp32(x[b].d);
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(d, (float)sumi[l], acc[l]);
  }
  return hsum8(acc);
}

}  // namespace

float dot_f32_scalar(int64_t n, const void* w, const void* a) {
  return dot_f32_row(n, static_cast<const float*>(w), static_cast<const float*>(a));
}

float dot_f16_scalar(int64_t n, const void* w, const void* a) {
  return dot_f16_row(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a));
}

float dot_bf16_scalar(int64_t n, const void* w, const void* a) {
  return dot_bf16_row(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a));
}

float dot_q8_0_scalar(int64_t n, const void* w, const void* a) {
  return dot_q8_0_row(n, static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(a));
}

float dot_q4_0_scalar(int64_t n, const void* w, const void* a) {
  return dot_q4_0_row(n, static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(a));
}

float dot_q4_k_scalar(int64_t n, const void* w, const void* a) {
  return dot_qk_row<false>(n, w, static_cast<const BlockQ8_K*>(a));
}

float dot_q5_k_scalar(int64_t n, const void* w, const void* a) {
  return dot_qk_row<true>(n, w, static_cast<const BlockQ8_K*>(a));
}

float dot_q6_k_scalar(int64_t n, const void* w, const void* a) {
  return dot_q6k_row(n, static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(a));
}

bool dot_rows_isa_scalar(TensorType type, int64_t n, const uint8_t* w, size_t stride, int64_t rows, const void* act,
                         float* out) {
  RowDotFn fn = nullptr;
  switch (type) {
    case TensorType::F32: fn = dot_f32_scalar; break;
    case TensorType::F16: fn = dot_f16_scalar; break;
    case TensorType::BF16: fn = dot_bf16_scalar; break;
    case TensorType::Q8_0: fn = dot_q8_0_scalar; break;
    case TensorType::Q4_0: fn = dot_q4_0_scalar; break;
    case TensorType::Q4_K: fn = dot_q4_k_scalar; break;
    case TensorType::Q5_K: fn = dot_q5_k_scalar; break;
    case TensorType::Q6_K: fn = dot_q6_k_scalar; break;
    default: return false;
  }
  for (int64_t r = 0; r < rows; ++r) out[r] = fn(n, w + r * stride, act);
  return true;
}

}  // namespace pginfer
