// kernels/cuda/rms_norm.h: RMS normalisation of token rows on the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pginfer::cuda {

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight for n_tokens rows of dim values (device pointers;
// out may alias x). The sum of squares is taken in double, the rest as kernels/common/elementwise.h says.
void rms_norm(const float* x, const float* weight, float eps, int64_t n_tokens, int64_t dim, float* out,
              cudaStream_t stream);

}  // namespace pginfer::cuda
