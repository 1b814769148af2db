// kernels/cpu/ops_avx2.cpp: SiLU-gated products computed as llama.cpp computes them (expf_avx2.h).
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/expf_avx2.h"
#include "kernels/cpu/ops_impl.h"

namespace pginfer {

void swiglu_row_avx2(const float* gate, const float* up, int64_t n, float* out) {
  // GGML: silu(x) = x / (1 + exp(0 - x)), then times up; whole groups of 16 vectorised, the rest with
  // the C library's expf.
  const int64_t vector_end = n / kGgmlExpLanes * kGgmlExpLanes;
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i < vector_end; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    const __m256 e = expf_ggml8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = (gate[i] / (1.0f + std::exp(-gate[i]))) * up[i];
}

}  // namespace pginfer
