// kernels/cpu/vec_dot.cpp: scalar row dots and the run-time choice between them and the SIMD ones.
//
// Each dot equals GGML's for the same inputs up to the order of float additions: integer sums within a
// block are exact, and blocks are combined as d_w * d_a * sum (minus dmin * mins * bsums for Q4_K/Q5_K).
#include "kernels/cpu/vec_dot.h"

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant_impl.h"
#include "kernels/cpu/vec_dot_impl.h"

namespace pginfer {

float dot_f32_scalar(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double)(x[i] * y[i]);
  return (float)s;
}

float dot_f16_scalar(int64_t n, const void* w, const void* a) {
  const fp16_t* x = static_cast<const fp16_t*>(w);
  const fp16_t* y = static_cast<const fp16_t*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
  return (float)s;
}

float dot_bf16_scalar(int64_t n, const void* w, const void* a) {
  const bf16_t* x = static_cast<const bf16_t*>(w);
  const bf16_t* y = static_cast<const bf16_t*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double)(bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]));
  return (float)s;
}

float dot_q8_0_scalar(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0;
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    int sum = 0;
    for (int j = 0; j < kQK8_0; ++j) sum += x[b].qs[j] * y[b].qs[j];
    s += fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d) * (float)sum;
  }
  return s;
}

float dot_q4_0_scalar(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float s = 0;
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    int sum = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      sum += ((x[b].qs[j] & 0x0f) - 8) * y[b].qs[j];
      sum += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + kQK4_0 / 2];
    }
    s += fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d) * (float)sum;
  }
  return s;
}

// Q4_K and Q5_K: sum over sub-blocks of sc * (q . a) and of m * (sum of a), per super-block.
template <bool kFifthBit, typename Block>
float dot_qk_scalar(int64_t n, const Block* x, const BlockQ8_K* y) {
  float s = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      k_scale_min(j, x[b].scales, &sc, &m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 0x0f;
        if constexpr (kFifthBit) v += ((x[b].qh[l] >> j) & 1) << 4;
        dot += v * y[b].qs[32 * j + l];
      }
      sumi += sc * dot;
      summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    s += y[b].d * fp16_to_fp32(x[b].d) * (float)sumi - y[b].d * fp16_to_fp32(x[b].dmin) * (float)summ;
  }
  return s;
}

float dot_q4_k_scalar(int64_t n, const void* w, const void* a) {
  return dot_qk_scalar<false>(n, static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a));
}

float dot_q5_k_scalar(int64_t n, const void* w, const void* a) {
  return dot_qk_scalar<true>(n, static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a));
}

float dot_q6_k_scalar(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int8_t q[kQK_K];
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    for (int c = 0; c < kQK_K; c += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        q[c + l] = (int8_t)(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
        q[c + l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
        q[c + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        q[c + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[16 * j + l] * y[b].qs[16 * j + l];
      sumi += x[b].scales[j] * dot;
    }
    s += fp16_to_fp32(x[b].d) * y[b].d * (float)sumi;
  }
  return s;
}

namespace {

RowDotFn scalar_fn(TensorType type) {
  switch (type) {
    case TensorType::F32: return dot_f32_scalar;
    case TensorType::F16: return dot_f16_scalar;
    case TensorType::BF16: return dot_bf16_scalar;
    case TensorType::Q8_0: return dot_q8_0_scalar;
    case TensorType::Q4_0: return dot_q4_0_scalar;
    case TensorType::Q4_K: return dot_q4_k_scalar;
    case TensorType::Q5_K: return dot_q5_k_scalar;
    case TensorType::Q6_K: return dot_q6_k_scalar;
    default: return nullptr;
  }
}

RowDotFn avx2_fn(TensorType type) {
  switch (type) {
    case TensorType::F32: return dot_f32_avx2;
    case TensorType::F16: return dot_f16_avx2;
    case TensorType::BF16: return dot_bf16_avx2;
    case TensorType::Q8_0: return dot_q8_0_avx2;
    case TensorType::Q4_0: return dot_q4_0_avx2;
    case TensorType::Q4_K: return dot_q4_k_avx2;
    case TensorType::Q5_K: return dot_q5_k_avx2;
    case TensorType::Q6_K: return dot_q6_k_avx2;
    default: return nullptr;
  }
}

void run_rows(RowDotFn fn, int64_t n, const void* weights, size_t row_stride, int64_t rows, const void* act,
              float* out) {
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  for (int64_t r = 0; r < rows; ++r) out[r] = fn(n, w + r * row_stride, act);
}

}  // namespace

TensorType vec_dot_type(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::Q4_0:
    case TensorType::Q8_0: return TensorType::Q8_0;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K: return TensorType::Q8_K;
    default: return weight_type;  // F32, F16, BF16 pair with themselves
  }
}

void dot_rows(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows, const void* act,
              float* out) {
  static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
  run_rows(use_avx2 ? avx2_fn(type) : scalar_fn(type), n, weights, row_stride, rows, act, out);
}

void dot_rows_tokens(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const void* acts, size_t act_stride, int64_t n_tokens, float* out, int64_t ldo) {
  static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
  static const bool use_vnni = use_avx2 && has_avx512_vnni();
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  const uint8_t* a = static_cast<const uint8_t*>(acts);
  if (type == TensorType::Q8_0 && use_avx2 && n_tokens >= 4) {
    (use_vnni ? dot_q8_0_rows_tokens_vnni : dot_q8_0_rows_tokens_avx2)(n, w, row_stride, rows, a, act_stride,
                                                                       n_tokens, out, ldo);
    return;
  }
  // Other types: row by row, every token, so that a weight row is read from cache once per token.
  const RowDotFn fn = use_avx2 ? avx2_fn(type) : scalar_fn(type);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) out[t * ldo + r] = fn(n, w + r * row_stride, a + t * act_stride);
  }
}

void dot_rows_scalar(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const void* act, float* out) {
  run_rows(scalar_fn(type), n, weights, row_stride, rows, act, out);
}

}  // namespace pginfer
