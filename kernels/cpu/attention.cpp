// kernels/cpu/attention.cpp: attention of one head: the portable version and the run-time dispatch.
#include "kernels/cpu/attention.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"

namespace pginfer {

void attend_head_f16_scalar(const float* q, const KvRows& keys, const KvRows& values, int64_t n_kv,
                            int64_t head_dim, float scale, float* scores, float* out) {
  // The query as F16 values, widened once.
  float qh[1024];
  std::vector<float> q_heap;
  float* qr = qh;
  if (head_dim > 1024) {
    q_heap.resize(head_dim);
    qr = q_heap.data();
  }
  for (int64_t d = 0; d < head_dim; ++d) qr[d] = round_to_fp16(q[d]);

  float max_score = -INFINITY;
  for (int64_t j = 0; j < n_kv; ++j) {
    const fp16_t* k = keys.row(j);
    float dot = 0.0f;
    for (int64_t d = 0; d < head_dim; ++d) dot += qr[d] * fp16_to_fp32(k[d]);
    const float s = dot * scale;
    scores[j] = s;
    if (s > max_score) max_score = s;
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n_kv; ++j) {
    const float e = std::exp(scores[j] - max_score);
    scores[j] = e;
    sum += (double)e;
  }
  const float inv_sum = (float)(1.0 / sum);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < n_kv; ++j) {
    const float p = round_to_fp16(scores[j] * inv_sum);
    const fp16_t* v = values.row(j);
    for (int64_t d = 0; d < head_dim; ++d) out[d] += p * fp16_to_fp32(v[d]);
  }
}

void attend_head_f16(const float* q, const KvRows& keys, const KvRows& values, int64_t n_kv, int64_t head_dim,
                     float scale, float* scores, float* out) {
  static const bool use_avx2 = simd_level() >= SimdLevel::Avx2;
  if (use_avx2) {
    attend_head_f16_avx2(q, keys, values, n_kv, head_dim, scale, scores, out);
  } else {
    attend_head_f16_scalar(q, keys, values, n_kv, head_dim, scale, scores, out);
  }
}

}  // namespace pginfer
