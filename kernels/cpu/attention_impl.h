// kernels/cpu/attention_impl.h: the per-ISA versions of attend_head_f16, chosen by attention.cpp.
#pragma once

#include <cstdint>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// Portable version.
void attend_head_f16_scalar(const float* q, const KvRows& keys, const KvRows& values, int64_t n_kv,
                            int64_t head_dim, float scale, float* scores, float* out);
// AVX2 + FMA + F16C version (head_dim a multiple of 8; falls back to scalar otherwise).
void attend_head_f16_avx2(const float* q, const KvRows& keys, const KvRows& values, int64_t n_kv,
                          int64_t head_dim, float scale, float* scores, float* out);

}  // namespace pginfer
