// kernels/cpu/gemm.h: products of a band of weight rows with many activation rows, through OpenBLAS.
//
// Prompts are evaluated as one batch; for them each band of weight rows is dequantized once into a
// cache-sized float tile and multiplied with every token's activations by sgemm. Activations are first
// rounded as llama.cpp rounds them (round_activations: F16 or BF16), so batched and one-token results
// agree.
//
// Only products of float weights (F32, F16, BF16) come here; quantized weights always go through the
// integer dot kernels (vec_dot.h), prompts included, because of what we measured against llama.cpp
// (tests/reference/compare.mjs, and the top log-probabilities llama.cpp reports for whole prompts):
// llama.cpp multiplies quantized blocks by integer dot products and one float multiply-add per block, in
// the same order for prompts and for decoding. sgemm sums in another order; the difference is in the last
// bits only, but the next layer rounds activations to 8 bits again, and a last-bit change that moves a
// value across a rounding boundary moves it by a whole quantum (1/127 of its block's largest value).
// Through the layers and the positions such flips cascade: with sgemm for Q8_0, log-probabilities after a
// 64-token prompt differed from llama.cpp's by 0.05; with the integer kernels in llama.cpp's order they
// agree to 2e-4. SiLU and softmax now use GGML's vectorised exp and attention sums in tinyBLAS's order
// (kernels/cpu/expf_avx2.h, attention_avx2.cpp), and the dot kernels are bit-identical to llama.cpp's
// zen4/haswell builds (tests/unit/vec_dot_test.cpp), except Q8_0's: those sum each block exactly and then
// the blocks in order (vec_dot_q8_0.h), so that a batch of tokens takes a third of the operations, and
// differ from GGML's in the last bits (over 3 x 160 teacher-forced positions, llama.cpp's greedy token
// went from 479 to 464 agreements, each difference a near tie). What remains: llama.cpp repacks Q4_0 and Q4_K weights
// on x86 and sums them in another order; and on deeper models a drift still starts at some position
// (position 17 of a 64-token prompt on llama-160m and tiny-qwen2 Q8_0, position 5 on qwen2-0.5b) whose
// last-bit source we have not found. From there log-probabilities differ by a few hundredths of a nat,
// and greedy argmax changes only where llama.cpp's two best tokens are that close (the reference test
// prints the gap at every disagreement). For F32 and F16 weights nothing rounds that coarsely, and sgemm
// agrees with llama.cpp to about 1e-3 in log-probability. llama.cpp itself changes its greedy continuation
// after 2-3 tokens on these models when flash attention is switched on.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// Rounds n values in place to what they become after conversion to vec_dot_type(weight_type) and back
// (Q8_0 or Q8_K quantization, F16 or BF16 rounding; nothing for F32). n is a multiple of the block size.
void round_activations(TensorType weight_type, float* x, int64_t n);

// y[t * ldy + r] = dot(weight row r, x[t]) for r in [row_begin, row_end) and t in [0, n_tokens), where
// weight row r starts at weights + r * row_stride and has k values of `type`, and x is n_tokens x k floats.
// `scratch` holds (row_end - row_begin) * k floats (unused for F32 weights). Uses single-threaded sgemm;
// callers parallelise over bands.
void gemm_rows(TensorType type, int64_t k, const uint8_t* weights, size_t row_stride, int64_t row_begin,
               int64_t row_end, const float* x, int64_t n_tokens, float* y, int64_t ldy, float* scratch);

// Makes OpenBLAS single-threaded (our own threads split the work). Safe to call more than once.
void gemm_init_single_threaded();

}  // namespace pginfer
