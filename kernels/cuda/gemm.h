// kernels/cuda/gemm.h: products of many tokens with a weight matrix through cuBLAS (prefill).
#pragma once

#include <cublas_v2.h>

#include <cstdint>

namespace pginfer::cuda {

// y[t][r] = sum_i w[r][i] * x[t][i] for t < n, r < rows: w is rows x k and x n x k, both row-major and of
// `operand_type` (CUDA_R_16F, CUDA_R_16BF or CUDA_R_32F), y n x rows floats; accumulation in float
// (cublasGemmEx, CUBLAS_COMPUTE_32F; F32 operands do not use TF32); with `accumulate`, y += that (beta = 1). Runs on
// the handle's stream.
cublasStatus_t gemm_rows(cublasHandle_t handle, cudaDataType_t operand_type, const void* w, const void* x,
                         int64_t rows, int64_t n, int64_t k, float* y, bool accumulate = false);

}  // namespace pginfer::cuda
