// tests/unit/common_kernels_test.cpp: the host/device headers of kernels/common (what the CUDA kernels run)
// against the CPU kernels of kernels/cpu, bit for bit, on the host.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tests/unit/test_data.h"
#include "kernels/common/dequant_block.h"
#include "kernels/common/elementwise.h"
#include "kernels/common/round_activations.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant.h"

namespace pginfer {
namespace {

using testing::random_row;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class CommonDequant : public ::testing::TestWithParam<TensorType> {};

// Quantized random rows of several magnitudes, and rows of random bytes (every bit pattern of scales and
// quants, subnormal and huge half scales included), decode identically through both paths.
TEST_P(CommonDequant, MatchesCpuDequantizerBitForBit) {
  const TensorType type = GetParam();
  const int64_t n = 1024;
  const size_t bytes = row_bytes(type, n);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<uint8_t> block(bytes);
    if (trial < 20) {
      const float scale = std::ldexp(1.0f, trial - 10);
      quantize_row(type, random_row(n, 100 + trial, scale).data(), block.data(), n);
    } else {
      uint64_t s = 977 + trial;
      for (auto& b : block) s = s * 6364136223846793005ull + 1442695040888963407ull, b = (uint8_t)(s >> 56);
    }
    std::vector<float> want(n), got(n);
    dequantize_row_scalar(type, block.data(), want.data(), n);
    ASSERT_TRUE(dequant_row_chunks(type, block.data(), got.data(), n));
    ASSERT_TRUE(same_bits(want, got)) << type_name(type) << " trial " << trial;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, CommonDequant,
                         ::testing::Values(TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                                           TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K),
                         [](const auto& info) { return std::string(type_name(info.param)); });

// The CPU's F16C conversion, the reference the shared conversion (used by CPU and GPU alike) must equal.
__attribute__((target("f16c"))) float hardware_half_to_float(uint16_t h) { return _cvtsh_ss(h); }

TEST(CommonDequant, HalfConversionMatchesTheHardwareOnEveryBitPattern) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "this CPU has no F16C to compare with";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = hardware_half_to_float((uint16_t)h), b = hd_fp16_to_fp32((uint16_t)h);
    ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << h;
    const float c = hd_bf16_to_fp32((uint16_t)h);
    uint32_t bits;
    std::memcpy(&bits, &c, 4);
    ASSERT_EQ(bits, h << 16) << h;  // bfloat16 is the top half of a float
  }
}

TEST(CommonDequant, RejectsActivationType) {
  float y[32];
  BlockQ8_K b{};
  EXPECT_FALSE(dequant_chunk(TensorType::Q8_K, &b, 0, y));
}

TEST(CommonElementwise, RmsNormMatchesCpu) {
  for (int64_t n : {64, 2048, 4096}) {
    std::vector<float> x = random_row(n, n, 3.0f), w = random_row(n, n + 1), want(n), got(n);
    rms_norm_row(x.data(), w.data(), 1e-6f, n, want.data());
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (double)(x[i] * x[i]);
    const float scale = rms_norm_scale(sum, n, 1e-6f);
    for (int64_t i = 0; i < n; ++i) got[i] = rms_norm_value(x[i], scale, w[i]);
    EXPECT_TRUE(same_bits(want, got)) << n;
  }
}

TEST(CommonElementwise, RopeMatchesCpu) {
  const int64_t head_dim = 128;
  std::vector<float> factors = random_row(64, 5, 0.5f);
  for (float& f : factors) f += 1.5f;
  for (bool neox : {false, true}) {
    for (int64_t n_rot : {64, 128}) {
      for (int32_t pos : {0, 1, 17, 4095, 100000}) {
        for (bool with_factors : {false, true}) {
          std::vector<float> want = random_row(head_dim, pos + n_rot), got = want;
          const float base = 500000.0f, fscale = 0.25f;
          const float* fac = with_factors ? factors.data() : nullptr;
          rope_head(want.data(), head_dim, n_rot, neox, pos, base, fscale, fac);
          const float ts = rope_theta_scale(base, n_rot);
          for (int64_t i = 0; i < n_rot / 2; ++i) {
            const float a = rope_angle(pos, i, ts, fscale, fac ? fac[i] : 1.0f);
            int64_t i0, i1;
            rope_pair_index(neox, i, n_rot, &i0, &i1);
            rope_rotate(got[i0], got[i1], std::cos(a), std::sin(a), &got[i0], &got[i1]);
          }
          EXPECT_TRUE(same_bits(want, got)) << neox << " " << n_rot << " " << pos << " " << with_factors;
        }
      }
    }
  }
}

TEST(CommonElementwise, SwigluMatchesScalarFormula) {
  // The CPU's AVX2 SwiGLU uses its own exp; the portable formula is the reference for both.
  std::vector<float> g = random_row(256, 1, 8.0f), u = random_row(256, 2), got(256), want(256);
  for (int i = 0; i < 256; ++i) {
    want[i] = (g[i] / (1.0f + std::exp(-g[i]))) * u[i];
    got[i] = swiglu_value(g[i], u[i]);
  }
  EXPECT_TRUE(same_bits(want, got));
  swiglu_row(g.data(), u.data(), 256, want.data());
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i])));
}

}  // namespace
}  // namespace pginfer

namespace pginfer {
namespace {

// Activations rounded by the shared header equal the CPU's quantize_row + dequantize_row, bit for bit, for
// every activation type, on rows with exact ties, zeros and repeated extremes.
TEST(CommonRoundActivations, MatchesCpuQuantizeDequantize) {
  for (TensorType weight : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K,
                            TensorType::F16, TensorType::BF16}) {
    const TensorType at = activation_type(weight);
    const int64_t n = 1024;
    for (int trial = 0; trial < 12; ++trial) {
      std::vector<float> x = random_row(n, 500 + trial, std::ldexp(1.0f, trial - 6));
      if (trial == 3) std::fill(x.begin(), x.begin() + 256, 0.0f);  // an all-zero block
      if (trial == 4) {
        for (int64_t i = 0; i < n; ++i) x[i] = (float)((i % 7) - 3) * 0.5f;  // ties at .5 and repeated maxima
      }
      std::vector<uint8_t> q(row_bytes(at, n));
      std::vector<float> want(n), got(n);
      quantize_row(at, x.data(), q.data(), n);
      dequantize_row_scalar(at, q.data(), want.data(), n);
      const int blk = activation_block(at);
      for (int64_t b = 0; b < n; b += blk) {
        if (at == TensorType::Q8_0) round_block_q8_0(x.data() + b, got.data() + b);
        else if (at == TensorType::Q8_K) round_block_q8_k(x.data() + b, got.data() + b);
        else got[b] = round_value(at, x[b]);
      }
      ASSERT_TRUE(same_bits(want, got)) << type_name(weight) << " trial " << trial;
    }
  }
}

}  // namespace
}  // namespace pginfer
