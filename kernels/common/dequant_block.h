// kernels/common/dequant_block.h: dequantization of one 32-value chunk of a row of any weight type, for the
// CPU and the GPU alike.
//
// A row of every supported type splits into chunks of 32 consecutive values: a block of Q8_0 or Q4_0, a
// sub-block of a Q4_K or Q5_K super-block, half of a pair of Q6_K's 16-value sub-blocks, or 32 plain values
// of F32, F16 or BF16. Each function computes GGML's dequantization formula with the same float operations
// in the same order as kernels/cpu/quant.cpp, so results are bit-identical to dequantize_row_scalar
// (tests/unit/dequant_block_test.cpp checks it); device code must be compiled without fused multiply-adds
// (nvcc --fmad=false) for the same to hold on the GPU.
#pragma once

#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// Values per chunk.
constexpr int kChunk = 32;

// Scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block (GGML's get_scale_min_k4).
PGI_HOST_DEVICE PGI_FORCEINLINE void hd_k_scale_min(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Chunk c of a Q8_0 row: block c.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_q8_0(const void* row, int64_t c, float* y) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(row) + c;
  const float d = hd_fp16_to_fp32(b->d);
  for (int j = 0; j < 32; ++j) y[j] = (float)b->qs[j] * d;
}

// Chunk c of a Q4_0 row: block c (low nibbles are values 0-15, high nibbles 16-31).
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_q4_0(const void* row, int64_t c, float* y) {
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(row) + c;
  const float d = hd_fp16_to_fp32(b->d);
  for (int j = 0; j < 16; ++j) {
    y[j] = (float)((b->qs[j] & 0x0f) - 8) * d;
    y[j + 16] = (float)((b->qs[j] >> 4) - 8) * d;
  }
}

// Chunk c of a Q4_K row: sub-block c % 8 of super-block c / 8.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_q4_k(const void* row, int64_t c, float* y) {
  const BlockQ4_K* b = static_cast<const BlockQ4_K*>(row) + c / 8;
  const int j = (int)(c % 8);
  const float d = hd_fp16_to_fp32(b->d);
  const float dmin = hd_fp16_to_fp32(b->dmin);
  uint8_t sc, m;
  hd_k_scale_min(j, b->scales, &sc, &m);
  const float d1 = d * sc, m1 = dmin * m;
  const uint8_t* q = b->qs + 32 * (j / 2);
  const int shift = (j & 1) * 4;
  for (int l = 0; l < 32; ++l) y[l] = d1 * (float)((q[l] >> shift) & 0x0f) - m1;
}

// Chunk c of a Q5_K row: sub-block c % 8 of super-block c / 8.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_q5_k(const void* row, int64_t c, float* y) {
  const BlockQ5_K* b = static_cast<const BlockQ5_K*>(row) + c / 8;
  const int j = (int)(c % 8);
  const float d = hd_fp16_to_fp32(b->d);
  const float dmin = hd_fp16_to_fp32(b->dmin);
  uint8_t sc, m;
  hd_k_scale_min(j, b->scales, &sc, &m);
  const float d1 = d * sc, m1 = dmin * m;
  const uint8_t* ql = b->qs + 32 * (j / 2);
  const int shift = (j & 1) * 4;
  const uint8_t u = (uint8_t)(1u << j);  // bit j of qh[l] is the fifth bit of value l of sub-block j
  for (int l = 0; l < 32; ++l) {
    y[l] = d1 * (float)(((ql[l] >> shift) & 0x0f) + (b->qh[l] & u ? 16 : 0)) - m1;
  }
}

// Chunk c of a Q6_K row: values 32 * (c % 8) .. + 31 of super-block c / 8.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_q6_k(const void* row, int64_t c, float* y) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(row) + c / 8;
  const int j = (int)(c % 8);
  const int half = j / 4;  // which 128 values
  const int part = j % 4;  // which 32 of them
  const float d = hd_fp16_to_fp32(b->d);
  const uint8_t* ql = b->ql + 64 * half + 32 * (part & 1);
  const uint8_t* qh = b->qh + 32 * half;
  const int8_t* sc = b->scales + 8 * half + 2 * part;
  const int lshift = (part >> 1) * 4;
  const int hshift = 2 * part;
  for (int l = 0; l < 32; ++l) {
    const int q = (int)(((ql[l] >> lshift) & 0x0f) | (((qh[l] >> hshift) & 3) << 4)) - 32;
    y[l] = d * (float)sc[l / 16] * (float)q;
  }
}

// Chunk c of an F16 row.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_f16(const void* row, int64_t c, float* y) {
  const uint16_t* s = static_cast<const uint16_t*>(row) + 32 * c;
  for (int j = 0; j < 32; ++j) y[j] = hd_fp16_to_fp32(s[j]);
}

// Chunk c of a BF16 row.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_bf16(const void* row, int64_t c, float* y) {
  const uint16_t* s = static_cast<const uint16_t*>(row) + 32 * c;
  for (int j = 0; j < 32; ++j) y[j] = hd_bf16_to_fp32(s[j]);
}

// Chunk c of an F32 row.
PGI_HOST_DEVICE PGI_FORCEINLINE void dequant_chunk_f32(const void* row, int64_t c, float* y) {
  const float* s = static_cast<const float*>(row) + 32 * c;
  for (int j = 0; j < 32; ++j) y[j] = s[j];
}

// Chunk c of a row of `type` (a weight type: not Q8_K); returns false for a type it does not handle.
PGI_HOST_DEVICE inline bool dequant_chunk(TensorType type, const void* row, int64_t c, float* y) {
  switch (type) {
    case TensorType::F32: dequant_chunk_f32(row, c, y); return true;
    case TensorType::F16: dequant_chunk_f16(row, c, y); return true;
    case TensorType::BF16: dequant_chunk_bf16(row, c, y); return true;
    case TensorType::Q8_0: dequant_chunk_q8_0(row, c, y); return true;
    case TensorType::Q4_0: dequant_chunk_q4_0(row, c, y); return true;
    case TensorType::Q4_K: dequant_chunk_q4_k(row, c, y); return true;
    case TensorType::Q5_K: dequant_chunk_q5_k(row, c, y); return true;
    case TensorType::Q6_K: dequant_chunk_q6_k(row, c, y); return true;
    default: return false;
  }
}

// Dequantizes a row of n values (a multiple of 32; of 256 for the K-quants) chunk by chunk; false for an
// unsupported type.
PGI_HOST_DEVICE inline bool dequant_row_chunks(TensorType type, const void* row, float* y, int64_t n) {
  for (int64_t c = 0; c < n / kChunk; ++c) {
    if (!dequant_chunk(type, row, c, y + c * kChunk)) return false;
  }
  return true;
}

}  // namespace pginfer
