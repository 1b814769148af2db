// tests/unit/ops_test.cpp: norms, rotary embedding, activations and attention against textbook formulas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/ops.h"

namespace pginfer {
namespace {

TEST(Ops, RmsNorm) {
  const float x[4] = {1, -2, 3, -4};
  const float w[4] = {1, 0.5f, 2, 1};
  float out[4];
  rms_norm_row(x, w, 0.0f, 4, out);
  const float rms = std::sqrt((1 + 4 + 9 + 16) / 4.0f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], x[i] / rms * w[i], 1e-6);
}

TEST(Ops, RopeStylesPairDimensionsDifferently) {
  const int64_t d = 8;
  for (bool neox : {false, true}) {
    std::vector<float> x(d);
    for (int i = 0; i < d; ++i) x[i] = (float)(i + 1);
    std::vector<float> y = x;
    rope_head(y.data(), d, d, neox, 5, 10000.0f, 1.0f, nullptr);
    for (int64_t i = 0; i < d / 2; ++i) {
      const double theta = 5.0 * std::pow(10000.0, -2.0 * i / d);
      const int64_t a = neox ? i : 2 * i, b = neox ? i + d / 2 : 2 * i + 1;
      EXPECT_NEAR(y[a], x[a] * std::cos(theta) - x[b] * std::sin(theta), 1e-4) << neox << " " << i;
      EXPECT_NEAR(y[b], x[a] * std::sin(theta) + x[b] * std::cos(theta), 1e-4) << neox << " " << i;
    }
  }
  // Position 0 is the identity; factors divide the angle.
  std::vector<float> x = {1, 2, 3, 4};
  std::vector<float> y = x;
  rope_head(y.data(), 4, 4, false, 0, 10000.0f, 1.0f, nullptr);
  EXPECT_EQ(x, y);
  const float factors[2] = {2.0f, 1.0f};
  std::vector<float> a = x, b = x;
  rope_head(a.data(), 4, 4, false, 6, 10000.0f, 1.0f, factors);
  rope_head(b.data(), 4, 4, false, 3, 10000.0f, 1.0f, nullptr);
  EXPECT_NEAR(a[0], b[0], 1e-5);
  EXPECT_NEAR(a[1], b[1], 1e-5);
}

TEST(Ops, SwiGlu) {
  const float g[3] = {-1, 0, 2}, u[3] = {3, 4, 5};
  float out[3];
  swiglu_row(g, u, 3, out);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-6);
}

// Rows read through a block table (a paged cache) give exactly what the same rows give contiguous.
TEST(Ops, AttentionOverPagedRowsEqualsContiguous) {
  const int64_t hd = 64, n_kv = 45, stride = 128, block = 8;
  const int64_t n_blocks = (n_kv + block - 1) / block;
  std::vector<fp16_t> k(n_kv * stride), v(n_kv * stride);
  std::vector<float> q(hd);
  uint64_t s = 7;
  auto rnd = [&] { s = s * 6364136223846793005ull + 1; return (float)((s >> 40) % 2000) / 1000.0f - 1.0f; };
  for (auto& x : k) x = fp32_to_fp16(rnd());
  for (auto& x : v) x = fp32_to_fp16(rnd());
  for (auto& x : q) x = rnd();
  // The same rows in a pool of blocks in another order.
  std::vector<int32_t> table(n_blocks);
  for (int64_t b = 0; b < n_blocks; ++b) table[b] = (int32_t)((b * 5 + 3) % n_blocks);
  std::vector<fp16_t> pk(n_blocks * block * stride), pv(n_blocks * block * stride);
  for (int64_t j = 0; j < n_kv; ++j) {
    const int64_t slot = table[j / block] * block + j % block;
    std::copy(k.begin() + j * stride, k.begin() + (j + 1) * stride, pk.begin() + slot * stride);
    std::copy(v.begin() + j * stride, v.begin() + (j + 1) * stride, pv.begin() + slot * stride);
  }
  KvRows ck, cv, bk, bv;
  ck.base = k.data();
  cv.base = v.data();
  bk.base = pk.data();
  bv.base = pv.data();
  ck.stride = cv.stride = bk.stride = bv.stride = stride;
  bk.blocks = bv.blocks = table.data();
  bk.block_shift = bv.block_shift = 3;
  std::vector<float> scores(n_kv), a(hd), b(hd);
  for (auto fn : {attend_head_f16_scalar, attend_head_f16_avx2}) {
    fn(q.data(), ck, cv, n_kv, hd, 0.125f, scores.data(), a.data());
    fn(q.data(), bk, bv, n_kv, hd, 0.125f, scores.data(), b.data());
    for (int64_t i = 0; i < hd; ++i) ASSERT_EQ(a[i], b[i]) << i;
  }
}

TEST(Ops, AttentionSimdMatchesScalarAndSoftmax) {
  const int64_t hd = 64, n_kv = 37, stride = 128;
  std::vector<fp16_t> k(n_kv * stride), v(n_kv * stride);
  std::vector<float> q(hd);
  uint64_t s = 1;
  auto rnd = [&] { s = s * 6364136223846793005ull + 1; return (float)((s >> 40) % 2000) / 1000.0f - 1.0f; };
  for (auto& x : k) x = fp32_to_fp16(rnd());
  for (auto& x : v) x = fp32_to_fp16(rnd());
  for (auto& x : q) x = rnd();
  std::vector<float> scores(n_kv), a(hd), b(hd), ref(hd, 0.0f);
  KvRows kr, vr;
  kr.base = k.data();
  vr.base = v.data();
  kr.stride = vr.stride = stride;
  attend_head_f16_scalar(q.data(), kr, vr, n_kv, hd, 0.125f, scores.data(), a.data());
  attend_head_f16_avx2(q.data(), kr, vr, n_kv, hd, 0.125f, scores.data(), b.data());
  std::vector<double> p(n_kv);
  double mx = -1e9, sum = 0;
  for (int64_t j = 0; j < n_kv; ++j) {
    double d = 0;
    for (int64_t i = 0; i < hd; ++i) d += (double)q[i] * fp16_to_fp32(k[j * stride + i]);
    p[j] = d * 0.125;
    mx = std::max(mx, p[j]);
  }
  for (auto& x : p) sum += (x = std::exp(x - mx));
  for (int64_t j = 0; j < n_kv; ++j)
    for (int64_t i = 0; i < hd; ++i) ref[i] += (float)(p[j] / sum * fp16_to_fp32(v[j * stride + i]));
  for (int64_t i = 0; i < hd; ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-5);
    EXPECT_NEAR(a[i], ref[i], 2e-3);
  }
}

}  // namespace
}  // namespace pginfer
