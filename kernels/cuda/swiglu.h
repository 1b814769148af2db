// kernels/cuda/swiglu.h: the SwiGLU activation on the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pginfer::cuda {

// out[i] = silu(gate[i]) * up[i] for n values (device; out may alias gate or up).
void swiglu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

}  // namespace pginfer::cuda
