// kernels/cuda/matvec.h: dequantizing matrix-vector products on the GPU (decoding, few tokens).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer::cuda {

// Most matrices of one launch.
constexpr int kMaxMatvecParts = 3;

// One matrix of a launch: `rows` rows of w (device), their products going to y (n_tokens rows of `rows` floats),
// plus bias[r] when bias is not null.
struct MatvecPart {
  const void* w = nullptr;
  int64_t rows = 0;
  const float* bias = nullptr;
  float* y = nullptr;
};

// Products of up to kMaxMatvecParts matrices of one type and row length with the same activations x, in one launch
// (decoding's q, k and v): for each part, y[t][r] = dot(row r of w, x[t]) (+ bias[r]) for t < n_tokens, w being
// `rows` rows of k values `row_bytes` apart, x n_tokens rows of k floats (device). One warp per row reads the row
// once for up to 8 tokens: meant for decoding and small batches, larger ones go through gemm.h. k must be a
// multiple of 32. The kernels round the activations as the CPU's products do, on the fly: to F16 or BF16 for those
// weights, to the Q8_0 or Q8_K values of kernels/common/round_activations.h for quantized ones (x is given
// unrounded). With `accumulate` each result is added to what y holds (y + (dot + bias), as an add
// after the product gives). With `swiglu`, two parts of equal rows, gate and up: parts[0].y receives
// swiglu_value(gate row . x, up row . x) (kernels/common/elementwise.h) and parts[1].y is not written.
struct MatvecJob {
  TensorType type = TensorType::F32;
  size_t row_bytes = 0;
  int64_t k = 0;
  const float* x = nullptr;
  int64_t n_tokens = 0;
  MatvecPart parts[kMaxMatvecParts];
  int n_parts = 0;
  bool accumulate = false;
  bool swiglu = false;
};

// Runs a job; false for an unsupported type, or a job it cannot run: rows that are not whole blocks of 32 values
// (256 for the K-quants), no tokens, parts without rows, or a swiglu of unequal parts or with `accumulate`.
bool matvec(const MatvecJob& job, cudaStream_t stream);

}  // namespace pginfer::cuda
