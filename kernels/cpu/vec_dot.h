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
//
// Q8_0 weights are the exception: every level sums them in our block-exact order (vec_dot_q8_0.h), which lets
// batches of tokens share each operation; results differ from GGML's in the last bits only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// The type an activation row is converted to before a dot product with a row of `weight_type`.
TensorType vec_dot_type(TensorType weight_type);

// For `rows` weight rows of `n` values each, starting at `weights` and `row_stride` bytes apart, writes
// out[r] = dot(row r, act), where `act` is one activation row already converted to vec_dot_type(type).
void dot_rows(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
              const void* act, float* out);

// Activation rows of several tokens for dot_rows_tokens, already converted to vec_dot_type, prepared once
// per product and shared by every band of rows: the rows as given and, where the machine's kernel for the
// weight type reads them interleaved by token (Q8_0, Q4_0 and the K-quants with AVX-512 VNNI), a packed
// copy.
class TokenActivations {
 public:
  // Takes n_tokens rows of n values of vec_dot_type(weight_type), act_stride bytes apart; they must stay
  // valid while this object is used. Packs them when the kernel wants it.
  void set(TensorType weight_type, int64_t n, const void* acts, size_t act_stride, int64_t n_tokens);
  // The rows, their stride in bytes and their number.
  const uint8_t* rows() const { return rows_; }
  size_t stride() const { return stride_; }
  int64_t n_tokens() const { return n_tokens_; }
  // The token-interleaved copy; empty when the kernel reads the rows.
  const std::vector<uint8_t>& packed() const { return packed_; }

 private:
  const uint8_t* rows_ = nullptr;
  size_t stride_ = 0;
  int64_t n_tokens_ = 0;
  std::vector<uint8_t> packed_;
};

// For `rows` weight rows and the tokens of `acts`, writes out[t * ldo + r] = dot(row r, activation t). Each
// result is bit-identical to dot_rows on that row and token, so prompts and batches round exactly as one
// token at a time does.
void dot_rows_tokens(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const TokenActivations& acts, float* out, int64_t ldo);

// The same for n_tokens activation rows act_stride bytes apart (prepares a TokenActivations each call).
void dot_rows_tokens(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows, const void* acts,
                     size_t act_stride, int64_t n_tokens, float* out, int64_t ldo);

// Same as dot_rows with the scalar code only: the reference the SIMD paths are tested against.
void dot_rows_scalar(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const void* act, float* out);

}  // namespace pginfer
