// kernels/cpu/vec_dot.h: dot products of weight rows with activations, as GGML's CPU backend computes them.
//
// llama.cpp does not multiply quantized weights by float activations: it first converts the activation row
// to the weight type's "vec_dot type" (F32 -> F32, F16 -> F16, BF16 -> BF16, Q8_0 and Q4_0 -> Q8_0,
// Q4_K/Q5_K/Q6_K -> Q8_K) and then takes integer (or half) dot products. We do the same, so our logits
// round as llama.cpp's do. Implementations: AVX-512, AVX2 and scalar, chosen at run time (cpu_features.h).
// Each row's result is bit-identical to llama.cpp's ggml_vec_dot_* for that row (its one-token path): the
// AVX-512 level to GGML's AVX-512 x86 build, the AVX2 and scalar levels to its AVX2 build (the same float
// operations in the same order; see vec_dot.cpp). Where an order could differ, results would still equal
// GGML's up to the order of float additions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// The type an activation row is converted to before a dot product with a row of `weight_type`.
TensorType vec_dot_type(TensorType weight_type);

// For `rows` weight rows of `n` values each, starting at `weights` and `row_stride` bytes apart, writes
// out[r] = dot(row r, act), where `act` is one activation row already converted to vec_dot_type(type).
void dot_rows(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
              const void* act, float* out);

// For `rows` weight rows and `n_tokens` activation rows (act_stride bytes apart, each already converted
// to vec_dot_type(type)), writes out[t * ldo + r] = dot(row r, activation t). Each result is bit-identical
// to dot_rows on that row and token (same operations in the same order); several tokens share each load
// of a weight block. Used for prompts, so that they round exactly as decoding does.
void dot_rows_tokens(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const void* acts, size_t act_stride, int64_t n_tokens, float* out, int64_t ldo);

// Same as dot_rows with the scalar code only: the reference the SIMD paths are tested against.
void dot_rows_scalar(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const void* act, float* out);

}  // namespace pginfer
