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

// Where the key (or value) rows of one head lie in a cache: row j (position j) is at base + slot(j) *
// stride, where slot(j) = j in a contiguous cache, and in a paged one slot(j) = blocks[j / B] * B + j % B
// for blocks of B = 2^block_shift positions listed by the block table `blocks`.
struct KvRows {
  const fp16_t* base = nullptr;     // slot 0 of the cache, already offset to the head
  int64_t stride = 0;               // elements from one slot to the next
  const int32_t* blocks = nullptr;  // the block table, or nullptr for a contiguous cache
  int block_shift = 0;              // log2 of the block size (paged caches)

  // Row j.
  const fp16_t* row(int64_t j) const {
    if (blocks == nullptr) return base + j * stride;
    const int64_t slot = ((int64_t)blocks[j >> block_shift] << block_shift) | (j & ((1 << block_shift) - 1));
    return base + slot * stride;
  }
};

// out[head_dim] = sum_j softmax(scale * q.k_j)_j * v_j over positions j in [0, n_kv), keys and values read
// through `keys` and `values` (F16). `scores` is scratch of n_kv floats. The result does not depend on
// where the rows lie (contiguous or paged): the sums run over positions in order either way.
void attend_head_f16(const float* q, const KvRows& keys, const KvRows& values, int64_t n_kv, int64_t head_dim,
                     float scale, float* scores, float* out);

}  // namespace pginfer
