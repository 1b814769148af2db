// kernels/cpu/expf_avx2.h: exp as llama.cpp's vectorised CPU kernels compute it, for the two places where
// its last bits decide our agreement with llama.cpp: SiLU and the softmax of attention.
//
// GGML evaluates exp in SiLU and softmax with a vectorised routine (ARM's optimized-routines algorithm:
// n = round(x / ln 2), b = x - n ln 2 in two parts, a degree-5 polynomial in b, times 2^n), 16 values at a
// time on AVX-512 machines, and with the C library's expf for the remaining n % 16 values. The C
// library's expf differs from it in the last bit for some inputs, and one such bit is enough to move an
// activation across an 8-bit rounding boundary a layer later (kernels/cpu/gemm.h). These functions
// reproduce that arithmetic (same constants, same fused operations, same order), eight lanes at a time;
// every operation is elementwise IEEE arithmetic, so the lane width does not change results.
// Include only from files compiled for AVX2 + FMA.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

namespace pginfer {

// exp(x) for eight values, bit-identical to GGML's ggml_v_expf for |x| up to 87 (beyond, the exact power
// of two is applied with ldexpf, which rounds once as vscalefps does).
inline __m256 expf_ggml8(__m256 x) {
  const __m256 shift = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
  const __m256 n = _mm256_sub_ps(z, shift);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 high = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)),
                                      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f)));
  const __m256 j = _mm256_fmadd_ps(high, u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  const __m256 limit = _mm256_set1_ps(126.0f);
  const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  if (_mm256_movemask_ps(_mm256_cmp_ps(abs_n, limit, _CMP_GT_OQ)) == 0) {
    // 2^n is a normal float: multiplying by it is exact, as scaling by it is.
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(j, _mm256_castsi256_ps(bits));
  }
  alignas(32) float jv[8], nv[8], out[8];
  _mm256_store_ps(jv, j);
  _mm256_store_ps(nv, n);
  for (int i = 0; i < 8; ++i) {
    if (nv[i] > 192.0f) {
      out[i] = INFINITY;
    } else if (nv[i] < -192.0f) {
      out[i] = 0.0f;
    } else {
      out[i] = std::ldexp(jv[i], (int)nv[i]);
    }
  }
  return _mm256_load_ps(out);
}

// Values handled by the vectorised routine in GGML's loops on AVX-512 machines (the rest use expf).
constexpr int64_t kGgmlExpLanes = 16;

}  // namespace pginfer
