// kernels/cuda/add.h: elementwise addition on the GPU, plain and as a bias broadcast over rows.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pginfer::cuda {

// out[i] = a[i] + b[i] for n values (device; out may alias a or b).
void add(const float* a, const float* b, int64_t n, float* out, cudaStream_t stream);

// y[t][r] += bias[r] for n_rows rows of `width` values (device).
void add_bias(float* y, const float* bias, int64_t n_rows, int64_t width, cudaStream_t stream);

}  // namespace pginfer::cuda
