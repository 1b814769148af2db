// kernels/cuda/dequant.h: conversions on the GPU to the 16-bit operand types of tensor-core products.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer::cuda {

// Dequantizes `rows` rows of k values of `type` (`row_bytes` apart) into a dense rows x k matrix of IEEE
// halves (device; values are the CPU's floats rounded to nearest half). False for Q8_K.
bool dequantize_to_f16(TensorType type, const void* w, size_t row_bytes, int64_t rows, int64_t k, uint16_t* out,
                       cudaStream_t stream);

// out[i] = x[i] rounded to an IEEE half (round to nearest even), n values.
void convert_f32_to_f16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream);

// out[i] = x[i] rounded to bfloat16 (round to nearest even), n values.
void convert_f32_to_bf16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream);

}  // namespace pginfer::cuda
