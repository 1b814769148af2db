// kernels/cuda/matvec.h: dequantizing matrix-vector products on the GPU (decoding, few tokens).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer::cuda {

// y[t][r] = dot(row r of w, x[t]) (+ bias[r]) for t < n_tokens, w being `rows` rows of k values of `type`
// `row_bytes` apart, x n_tokens rows of k floats, y n_tokens rows of `rows` floats (device; bias may be
// null). One warp per row reads the row once for up to 8 tokens: meant for decoding and small batches,
// larger ones go through gemm.h. k must be a multiple of 32. False for an unsupported type. Activations are
// used as given, except that F16 and BF16 weights round them to their own type on the fly (as the CPU's
// products do); for quantized weights the caller rounds them first (round_activations.h).
bool matvec(TensorType type, const void* w, size_t row_bytes, int64_t rows, int64_t k, const float* x,
            int64_t n_tokens, const float* bias, float* y, cudaStream_t stream);

}  // namespace pginfer::cuda
