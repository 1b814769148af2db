// kernels/cpu/quant.h: row conversions between float and every tensor type (dequantize, quantize).
//
// Dequantization follows GGML's formulas exactly. Quantization of weights (used by `infer synth` and
// `infer quantize`) searches scales as GGML's reference quantizers do, so quality is comparable; it need not
// be bit-identical to llama-quantize. Quantization of activations (Q8_0, Q8_K) is bit-identical to GGML's,
// because llama.cpp's results depend on it (see vec_dot.h).
#pragma once

#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// Writes the `n` values of one row stored as `type` at `src` to `dst` as floats. `n` is a multiple of the
// type's block size. Every supported type, F32 included.
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);

// dequantize_row without SIMD: the reference the vectorised versions are tested against.
void dequantize_row_scalar(TensorType type, const void* src, float* dst, int64_t n);

// Stores `n` floats as `type` (any supported type, Q8_K included); `n` is a multiple of the block size.
void quantize_row(TensorType type, const float* src, void* dst, int64_t n);

}  // namespace pginfer
