// kernels/cuda/round_activations.h: activations rounded on the GPU as the CPU's products see them
// (kernels/common/round_activations.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer::cuda {

// out = x rounded to `act_type` (Q8_0, Q8_K, F16 or BF16; F32 copies) and back to floats, n values, n a
// multiple of the type's block. Bit-identical to the CPU's quantize_row + dequantize_row. out may alias x.
void round_activations(TensorType act_type, const float* x, int64_t n, float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
