// kernels/cuda/argmax.h: the index of each row's largest logit, on the GPU (greedy sampling without copying the
// logits back).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pginfer::cuda {

// out[r] = argmax of row r of n_rows rows of n_vocab floats (device arrays), as engine/sampler.h's argmax(): the
// first index holding the largest value, NaNs never chosen, 0 for a row whose first value is a NaN.
void argmax_rows(const float* rows, int64_t n_rows, int64_t n_vocab, int32_t* out, cudaStream_t stream);

}  // namespace pginfer::cuda
