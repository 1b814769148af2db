// kernels/cpu/attention.h: attention of one query head over keys and values stored as F16.
//
// Rounding follows llama.cpp's CPU path without flash attention: the KV cache holds F16; the query is
// rounded to F16 for q.k (GGML converts the other operand of an F16 matrix product to F16); scores are
// scaled and soft-maxed in float; the probabilities are rounded to F16 before they weight the values
// (again the F16 product's conversion). Dot products accumulate in float.
#pragma once

#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// out[head_dim] = sum_j softmax(scale * q.k_j)_j * v_j over j in [0, n_kv), where key j starts at
// keys + j * stride and value j at values + j * stride (F16). `scores` is scratch of n_kv floats.
void attend_head_f16(const float* q, const fp16_t* keys, const fp16_t* values, int64_t stride,
                     int64_t n_kv, int64_t head_dim, float scale, float* scores, float* out);

}  // namespace pginfer
