// kernels/cpu/gemm.cpp: dequantize-then-sgemm over a band of rows.
#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <vector>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot.h"

namespace pginfer {

void round_activations(TensorType weight_type, float* x, int64_t n) {
  const TensorType vt = vec_dot_type(weight_type);
  if (vt == TensorType::F32) return;
  // One block-sized chunk at a time keeps the temporary on the stack-sized buffer.
  const TypeTraits* tr = type_traits(vt);
  const int64_t chunk = tr->block_elems * 8;
  std::vector<uint8_t> tmp(row_bytes(vt, chunk));
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = (n - i) < chunk ? (n - i) : chunk;
    quantize_row(vt, x + i, tmp.data(), len);
    dequantize_row(vt, tmp.data(), x + i, len);
  }
}

void gemm_rows(TensorType type, int64_t k, const uint8_t* weights, size_t row_stride, int64_t row_begin,
               int64_t row_end, const float* x, int64_t n_tokens, float* y, int64_t ldy, float* scratch) {
  const int64_t n_rows = row_end - row_begin;
  if (n_rows <= 0 || n_tokens <= 0) return;
  const float* tile;
  if (type == TensorType::F32 && row_stride == (size_t)k * sizeof(float)) {
    tile = reinterpret_cast<const float*>(weights + row_begin * row_stride);
  } else {
    for (int64_t r = 0; r < n_rows; ++r) {
      dequantize_row(type, weights + (row_begin + r) * row_stride, scratch + r * k, k);
    }
    tile = scratch;
  }
  // Row-major: Y (n_tokens x n_rows, leading dim ldy) = X (n_tokens x k) * tile^T (k x n_rows).
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tokens, (int)n_rows, (int)k, 1.0f, x, (int)k,
              tile, (int)k, 0.0f, y + row_begin, (int)ldy);
}

void gemm_init_single_threaded() { openblas_set_num_threads(1); }

}  // namespace pginfer
