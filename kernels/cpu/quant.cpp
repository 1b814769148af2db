// kernels/cpu/quant.cpp: dequantization of every type (GGML's dequantize_row_* formulas, same float
// operations in the same order), quantization of Q8_0 activations and of the simple weight types; the
// K-quant quantizers and Q8_K are in quant_k.cpp.
#include "kernels/cpu/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant_impl.h"

namespace pginfer {

namespace {

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK4_0) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
      y[j + kQK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = (float)x[i].qs[j] * d;
  }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int j = 0, is = 0; j < kQK_K; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      k_scale_min(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      k_scale_min(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (float)(q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < kQK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      k_scale_min(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      k_scale_min(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (float)((ql[l] & 0x0f) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int n = 0; n < kQK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = (int)((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = (int)((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * (float)sc[is] * (float)q1;
        y[l + 32] = d * (float)sc[is + 2] * (float)q2;
        y[l + 64] = d * (float)sc[is + 4] * (float)q3;
        y[l + 96] = d * (float)sc[is + 6] * (float)q4;
      }
    }
  }
}

void dequantize_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    for (int j = 0; j < kQK_K; ++j) y[j] = x[i].d * (float)x[i].qs[j];
  }
}

// Q4_0 as GGML's reference quantizer: the value of largest magnitude maps to -8.
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int a = std::min(15, (int)(int8_t)(x[j] * id + 8.5f));
      const int b = std::min(15, (int)(int8_t)(x[j + kQK4_0 / 2] * id + 8.5f));
      y[i].qs[j] = (uint8_t)(a | (b << 4));
    }
  }
}

}  // namespace

// Q8_0 as llama.cpp's x86 builds quantize activations: ggml-cpu's AVX/AVX2 quantize_row_q8_0 (also what
// its AVX-512 builds run) takes d = amax / 127 (stored as F16, rounded to nearest even as F16C does) but
// multiplies by id = 127 / amax rather than 1 / d, and rounds x * id with _mm256_round_ps(_MM_ROUND_NEAREST),
// i.e. half to even. GGML's reference quantize_row_q8_0_ref (used by llama-quantize for weights and by
// builds without AVX) uses id = 1 / d and roundf (half away from zero) instead; the two differ in about
// one block in ten thousand. Activation bits are what llama.cpp's results depend on, so weights get the
// same rounding here.
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) {
      const float a = std::fabs(x[j]);
      if (a > amax) amax = a;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = (int8_t)nearest_int(x[j] * id);  // |x * id| <= 127
  }
}

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
  if (use_avx2 && type != TensorType::F32 && type != TensorType::Q8_K) {
    dequantize_row_avx2(type, src, dst, n);
    return;
  }
  dequantize_row_scalar(type, src, dst, n);
}

void dequantize_row_scalar(TensorType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case TensorType::F16: {
      const fp16_t* s = static_cast<const fp16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
      return;
    }
    case TensorType::BF16: {
      const bf16_t* s = static_cast<const bf16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
      return;
    }
    case TensorType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / kQK4_0);
    case TensorType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / kQK8_0);
    case TensorType::Q4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, n / kQK_K);
    case TensorType::Q5_K: return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, n / kQK_K);
    case TensorType::Q6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, n / kQK_K);
    case TensorType::Q8_K: return dequantize_q8_k(static_cast<const BlockQ8_K*>(src), dst, n / kQK_K);
  }
}

void quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case TensorType::F16: {
      fp16_t* d = static_cast<fp16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
      return;
    }
    case TensorType::BF16: {
      bf16_t* d = static_cast<bf16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
      return;
    }
    case TensorType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n / kQK4_0);
    case TensorType::Q8_0: {
      static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
      return (use_avx2 ? quantize_q8_0_avx2 : quantize_q8_0)(src, static_cast<BlockQ8_0*>(dst), n / kQK8_0);
    }
    case TensorType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), n / kQK_K);
    case TensorType::Q5_K: return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), n / kQK_K);
    case TensorType::Q6_K: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), n / kQK_K);
    case TensorType::Q8_K: {
      static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
      return (use_avx2 ? quantize_q8_k_avx2 : quantize_q8_k)(src, static_cast<BlockQ8_K*>(dst), n / kQK_K);
    }
  }
}

}  // namespace pginfer
