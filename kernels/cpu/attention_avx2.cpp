// kernels/cpu/attention_avx2.cpp: attend_head_f16 with AVX2, FMA and F16C (same rounding as the scalar
// version; only the order of float additions differs).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/expf_avx2.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/simd_x86.h"

namespace pginfer {

namespace {

// Loops over a fixed number of accumulators, unrolled so that they stay in registers.
#define PGINFER_ATTN_UNROLL _Pragma("GCC unroll 8")

// Rows ahead whose keys (values) are fetched while a score (a weighted value) is computed: the rows of a
// paged cache, and a head's slice of each row, are scattered, so without it every row waits for memory.
constexpr int64_t kPrefetchRows = 8;

// Asks for the `bytes` of a row starting at p, one cache line at a time.
inline void prefetch_row(const fp16_t* p, int64_t bytes) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

// 8 floats rounded to the nearest F16 values (F16C, as fp32_to_fp16 emulates it) and back.
inline __m256 round8_to_fp16(__m256 x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }

// Dimensions summed together in registers by sum_slot: 8 vectors of 8 (64 dimensions).
constexpr int64_t kSlotVecs = 8;

// dst[0 .. 8N) = sum over positions j = s, s + step, ... below n_kv of p[j] * (values row j)[d0 + ...], as
// fused multiply-adds from zero in position order, the N accumulators kept in registers.
template <int N>
inline void sum_slot(const KvRows& values, const float* p, int64_t n_kv, int64_t s, int64_t step, int64_t d0,
                     float* dst) {
  __m256 acc[N];
  PGINFER_ATTN_UNROLL
  for (int i = 0; i < N; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t j = s; j < n_kv; j += step) {
    if (j + step < n_kv) prefetch_row(values.row(j + step) + d0, N * 8 * (int64_t)sizeof(fp16_t));
    const __m256 pj = _mm256_set1_ps(p[j]);
    const fp16_t* v = values.row(j) + d0;
    PGINFER_ATTN_UNROLL
    for (int i = 0; i < N; ++i) {
      acc[i] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 8 * i))), pj,
                               acc[i]);
    }
  }
  PGINFER_ATTN_UNROLL
  for (int i = 0; i < N; ++i) _mm256_store_ps(dst + 8 * i, acc[i]);
}

}  // namespace

void attend_head_f16_avx2(const float* q, const KvRows& keys, const KvRows& values, int64_t n_kv,
                          int64_t head_dim, float scale, float* scores, float* out) {
  if (head_dim % 16 != 0 || head_dim > 512) {
    attend_head_f16_scalar(q, keys, values, n_kv, head_dim, scale, scores, out);
    return;
  }
  alignas(32) float qr[512];
  for (int64_t d = 0; d < head_dim; d += 8) _mm256_store_ps(qr + d, round8_to_fp16(_mm256_loadu_ps(q + d)));
  // q.k as llama.cpp's tinyBLAS computes an F16 product: one 16-lane accumulator, a fused multiply-add
  // per 16 dimensions, then the 16 lanes summed as a halving tree (hsum16_halves).
  float max_score = -INFINITY;
  const int64_t row_bytes = head_dim * (int64_t)sizeof(fp16_t);
  for (int64_t j = 0; j < n_kv; ++j) {
    if (j + kPrefetchRows < n_kv) prefetch_row(keys.row(j + kPrefetchRows), row_bytes);
    const fp16_t* k = keys.row(j);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t d = 0; d < head_dim; d += 16) {
      lo = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d))), _mm256_load_ps(qr + d), lo);
      hi = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d + 8))), _mm256_load_ps(qr + d + 8), hi);
    }
    const float s = hsum16_halves(lo, hi) * scale;
    scores[j] = s;
    max_score = s > max_score ? s : max_score;
  }
  // exp(s - max) as GGML's softmax computes it. llama.cpp's attention rows span the whole padded KV
  // cache, masked positions included (exp gives 0 for them), so every real score goes through the
  // vectorised exp in groups of 16, each group's sum added in double (expf_avx2.h). A last partial
  // group is padded with -inf, which contributes exactly 0.
  double sum = 0.0;
  const __m256 max_v = _mm256_set1_ps(max_score);
  for (int64_t j = 0; j < n_kv; j += kGgmlExpLanes) {
    alignas(32) float group[kGgmlExpLanes];
    const int64_t len = std::min<int64_t>(kGgmlExpLanes, n_kv - j);
    for (int64_t i = 0; i < kGgmlExpLanes; ++i) group[i] = i < len ? scores[j + i] : -INFINITY;
    const __m256 e0 = expf_ggml8(_mm256_sub_ps(_mm256_load_ps(group), max_v));
    const __m256 e1 = expf_ggml8(_mm256_sub_ps(_mm256_load_ps(group + 8), max_v));
    _mm256_store_ps(group, e0);
    _mm256_store_ps(group + 8, e1);
    for (int64_t i = 0; i < len; ++i) scores[j + i] = group[i];
    sum += (double)hsum16_halves(e0, e1);
  }
  const float inv_sum = (float)(1.0 / sum);
  // Probabilities (rounded to F16) times values as GGML's F16 dot product over the KV positions: four
  // accumulators of 16 lanes, position j feeding accumulator (j / 16) % 4, lane j % 16; then accumulators
  // 0+2 and 1+3, their sum, and the 16 lanes as a halving tree.
  // Slot s = 16 * accumulator + lane; only the first min(n_kv, 64) slots are ever used, so only those are
  // written (the first product into a slot is added to zero, as the zeroed accumulator would), and unused
  // slots read as zero in the final sums.
  const int64_t n_vec = head_dim / 8;
  constexpr int64_t kSlots = 4 * kGgmlExpLanes;
  const int64_t used = std::min<int64_t>(n_kv, kSlots);
  // Slot s at lanes + s * head_dim: packed, so that the slots do not fall into the same few L1 sets. Each
  // slot is summed in registers over its positions s, s + 64, ... (the same multiply-adds in the same order
  // as position by position), 8 dimensions at a time, and stored once.
  alignas(32) float lanes[kSlots * 512];
  // The probabilities as GGML rounds them.
  const __m256 inv_sum_v = _mm256_set1_ps(inv_sum);
  int64_t j8 = 0;
  for (; j8 + 8 <= n_kv; j8 += 8) {
    _mm256_storeu_ps(scores + j8, round8_to_fp16(_mm256_mul_ps(_mm256_loadu_ps(scores + j8), inv_sum_v)));
  }
  for (; j8 < n_kv; ++j8) scores[j8] = round_to_fp16(scores[j8] * inv_sum);
  for (int64_t c0 = 0; c0 < n_vec; c0 += kSlotVecs) {
    const int64_t nc = std::min(kSlotVecs, n_vec - c0);
    for (int64_t s = 0; s < used; ++s) {
      float* dst = lanes + s * head_dim + 8 * c0;
      if (nc == kSlotVecs) {
        sum_slot<kSlotVecs>(values, scores, n_kv, s, kSlots, 8 * c0, dst);
      } else {
        for (int64_t i = 0; i < nc; ++i) sum_slot<1>(values, scores, n_kv, s, kSlots, 8 * (c0 + i), dst + 8 * i);
      }
    }
  }
  auto slot = [&](int64_t a, int64_t l, int64_t i) {
    const int64_t s = a * kGgmlExpLanes + l;
    return s < used ? _mm256_load_ps(lanes + s * head_dim + 8 * i) : _mm256_setzero_ps();
  };
  for (int64_t i = 0; i < n_vec; ++i) {
    __m256 t[16];
    for (int l = 0; l < 16; ++l) {
      const __m256 a02 = _mm256_add_ps(slot(0, l, i), slot(2, l, i));
      const __m256 a13 = _mm256_add_ps(slot(1, l, i), slot(3, l, i));
      t[l] = _mm256_add_ps(a02, a13);
    }
    for (int l = 0; l < 8; ++l) t[l] = _mm256_add_ps(t[l + 8], t[l]);
    for (int l = 0; l < 4; ++l) t[l] = _mm256_add_ps(t[l + 4], t[l]);
    for (int l = 0; l < 2; ++l) t[l] = _mm256_add_ps(t[l], t[l + 2]);
    _mm256_storeu_ps(out + 8 * i, _mm256_add_ps(t[0], t[1]));
  }
}

}  // namespace pginfer
