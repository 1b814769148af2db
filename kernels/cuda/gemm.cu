// kernels/cuda/gemm.cu: the row-major product as cuBLAS's column-major one: y^T (rows x n) = w (k x rows)^T
// x^T (k x n), where a row-major matrix is read as its column-major transpose.
#include "kernels/cuda/gemm.h"

namespace pginfer::cuda {

cublasStatus_t gemm_rows(cublasHandle_t handle, cudaDataType_t operand_type, const void* w, const void* x,
                         int64_t rows, int64_t n, int64_t k, float* y, bool accumulate) {
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n, (int)k, &alpha, w, operand_type, (int)k,
                      x, operand_type, (int)k, &beta, y, CUDA_R_32F, (int)rows, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
}

}  // namespace pginfer::cuda
