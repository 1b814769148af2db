// kernels/cuda/kv_slots.cuh: where the attention kernels find the row of a position (device code only): slot p of
// a contiguous cache, or through the sequence's block table of a paged one (KvSlots, attention.h).
#pragma once

#include <cstdint>

#include "kernels/cuda/attention.h"

namespace pginfer::cuda {

// Token t's block table: null for a contiguous cache.
__device__ __forceinline__ const int32_t* table_of(const KvSlots& s, int64_t t) {
  if (s.blocks == nullptr) return nullptr;
  return s.table_start == nullptr ? s.blocks : s.blocks + s.table_start[t];
}

// The slot of position p of a sequence whose block table is `table`: p itself in a contiguous cache (no table).
__device__ __forceinline__ int64_t slot_of(const int32_t* table, int block_shift, int64_t p) {
  if (table == nullptr) return p;
  const int64_t mask = (int64_t{1} << block_shift) - 1;
  return ((int64_t)table[p >> block_shift] << block_shift) | (p & mask);
}

}  // namespace pginfer::cuda
