// kernels/cuda/embed.h: gathering embedding rows of any weight type on the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer::cuda {

// out[t] = row ids[t] of `table` (rows of `dim` values of `type`, `row_bytes` apart) as floats; ids are on
// the device and already checked. Bit-identical to the CPU's dequantize_row. False for a type it does not
// handle (Q8_K).
bool embed(TensorType type, const void* table, size_t row_bytes, int64_t dim, const int32_t* ids,
           int64_t n_tokens, float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
