// kernels/cpu/vec_dot.cpp: the vec_dot type of each weight type and the run-time choice of row kernels.
//
// The kernels (vec_dot_scalar.cpp, vec_dot_avx2.cpp, vec_dot_avx512.cpp) compute each row's dot product
// with GGML's float operations in GGML's order, so results equal llama.cpp's ggml_vec_dot_* bit for bit
// (AVX-512 level: its AVX-512 build; AVX2 and scalar levels: its AVX2 build). Integer sums inside blocks
// are exact whatever their order; blocks combine as fma(d_w * d_a, sums, acc) (K-quants: d = d_a * d_w,
// and the dmin * mins * bsums term for Q4_K/Q5_K). Were an order to differ, results would still equal
// GGML's up to the order of float additions. Q8_0 weights follow our block-exact order instead
// (vec_dot_q8_0.h), at every level.
#include "kernels/common/round_activations.h"
#include "kernels/cpu/vec_dot.h"

#include <algorithm>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/vec_dot_impl.h"

namespace pginfer {

namespace {

bool run_level(SimdLevel level, TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
               const void* act, float* out) {
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  switch (level) {
    case SimdLevel::Avx512: return dot_rows_isa_avx512(type, n, w, row_stride, rows, act, out);
    case SimdLevel::Avx2: return dot_rows_isa_avx2(type, n, w, row_stride, rows, act, out);
    default: return dot_rows_isa_scalar(type, n, w, row_stride, rows, act, out);
  }
}

RowDotFn scalar_fn(TensorType type) {
  switch (type) {
    case TensorType::F32: return dot_f32_scalar;
    case TensorType::F16: return dot_f16_scalar;
    case TensorType::BF16: return dot_bf16_scalar;
    case TensorType::Q8_0: return dot_q8_0_scalar;
    case TensorType::Q4_0: return dot_q4_0_scalar;
    case TensorType::Q4_K: return dot_q4_k_scalar;
    case TensorType::Q5_K: return dot_q5_k_scalar;
    case TensorType::Q6_K: return dot_q6_k_scalar;
    default: return nullptr;
  }
}

}  // namespace

TensorType vec_dot_type(TensorType weight_type) { return activation_type(weight_type); }

void dot_rows(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows, const void* act,
              float* out) {
  static const SimdLevel level = simd_level();
  run_level(level, type, n, weights, row_stride, rows, act, out);
}

void dot_rows_level(SimdLevel level, TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                    const void* act, float* out) {
  run_level(std::min(level, machine_simd_level()), type, n, weights, row_stride, rows, act, out);
}

namespace {

// A weight type's packed (AVX-512 VNNI) kernel: how it packs the activations, its product, and the tokens from
// which it beats the one-token kernel run per token.
struct PackedKernel {
  void (*pack)(int64_t n, const uint8_t* acts, size_t act_stride, int64_t n_tokens, std::vector<uint8_t>* packed);
  void (*dot)(int64_t n, const uint8_t* w, size_t row_stride, int64_t rows, const uint8_t* packed, int64_t n_tokens,
              float* out, int64_t ldo);
  int64_t min_tokens;
};

// The packed kernel of `type`, or null. Thresholds measured on one thread (tests/bench/bench_vec_dot.cpp
// --tokens, 768 and 2048 values): Q8_0 from 4; Q4_0 from 5 (22 against 26 GMAC/s at 4 tokens, 35 at 5); Q4_K
// and Q5_K from 5 (41-42 and 35-37 against 35 and 27-29), Q6_K from 6 (38-40 against 35).
const PackedKernel* packed_kernel(TensorType type) {
  static const PackedKernel q8_0{pack_q8_0_tokens_vnni, dot_q8_0_packed_vnni, 4};
  static const PackedKernel q4_0{pack_q4_0_tokens_vnni, dot_q4_0_packed_vnni, 5};
  static const PackedKernel q4_k{pack_k_tokens_vnni, dot_q4_k_packed_vnni, 5};
  static const PackedKernel q5_k{pack_k_tokens_vnni, dot_q5_k_packed_vnni, 5};
  static const PackedKernel q6_k{pack_k_tokens_vnni, dot_q6_k_packed_vnni, 6};
  switch (type) {
    case TensorType::Q8_0: return &q8_0;
    case TensorType::Q4_0: return &q4_0;
    case TensorType::Q4_K: return &q4_k;
    case TensorType::Q5_K: return &q5_k;
    case TensorType::Q6_K: return &q6_k;
    default: return nullptr;
  }
}

}  // namespace

void TokenActivations::set(TensorType weight_type, int64_t n, const void* acts, size_t act_stride, int64_t n_tokens) {
  rows_ = static_cast<const uint8_t*>(acts);
  stride_ = act_stride;
  n_tokens_ = n_tokens;
  packed_.clear();
  static const bool use_vnni = has_avx512_vnni();
  const PackedKernel* kernel = use_vnni ? packed_kernel(weight_type) : nullptr;
  if (kernel != nullptr && n_tokens >= kernel->min_tokens) kernel->pack(n, rows_, act_stride, n_tokens, &packed_);
}

void dot_rows_tokens(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows,
                     const TokenActivations& acts, float* out, int64_t ldo) {
  static const SimdLevel level = simd_level();
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  const PackedKernel* kernel = acts.packed().empty() ? nullptr : packed_kernel(type);
  if (kernel != nullptr) {  // packed by set() for this weight type
    kernel->dot(n, w, row_stride, rows, acts.packed().data(), acts.n_tokens(), out, ldo);
    return;
  }
  // Otherwise the dot_rows kernels on bands of rows small enough to stay in cache across the tokens.
  const int64_t band = std::max<int64_t>(4, (int64_t)(256 * 1024 / std::max<size_t>(row_stride, 1)) & ~(int64_t)3);
  for (int64_t r0 = 0; r0 < rows; r0 += band) {
    const int64_t nr = std::min(band, rows - r0);
    for (int64_t t = 0; t < acts.n_tokens(); ++t) {
      run_level(level, type, n, w + r0 * row_stride, row_stride, nr, acts.rows() + t * acts.stride(),
                out + t * ldo + r0);
    }
  }
}

void dot_rows_tokens(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows, const void* acts,
                     size_t act_stride, int64_t n_tokens, float* out, int64_t ldo) {
  TokenActivations prepared;
  prepared.set(type, n, acts, act_stride, n_tokens);
  dot_rows_tokens(type, n, weights, row_stride, rows, prepared, out, ldo);
}

void dot_rows_scalar(TensorType type, int64_t n, const void* weights, size_t row_stride, int64_t rows, const void* act,
                     float* out) {
  const RowDotFn fn = scalar_fn(type);
  if (!fn) return;
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  for (int64_t r = 0; r < rows; ++r) out[r] = fn(n, w + r * row_stride, act);
}

}  // namespace pginfer
