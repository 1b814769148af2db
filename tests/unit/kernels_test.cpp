// tests/unit/kernels_test.cpp: quantization round trips and SIMD dots against scalar and float references.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/unit/test_data.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot.h"

namespace pginfer {
namespace {

using testing::random_row;

const TensorType kWeightTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
                                   TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

class KernelByType : public ::testing::TestWithParam<TensorType> {};

TEST_P(KernelByType, QuantizeDequantizeErrorIsSmall) {
  const TensorType type = GetParam();
  const int64_t n = 1024;
  std::vector<float> x = random_row(n, 1), y(n);
  std::vector<uint8_t> q(row_bytes(type, n));
  quantize_row(type, x.data(), q.data(), n);
  dequantize_row(type, q.data(), y.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) err += (x[i] - y[i]) * (x[i] - y[i]), ref += x[i] * x[i];
  const double rel = std::sqrt(err / ref);
  // Uniform data: 4-bit types keep about 5-9% RMS error, 5-bit 3-4%, 6-bit 2%, 8-bit under 1%.
  const double limit = type == TensorType::Q4_0 ? 0.12 : type == TensorType::Q4_K ? 0.09 :
                       type == TensorType::Q5_K ? 0.045 : type == TensorType::Q6_K ? 0.025 : 0.01;
  EXPECT_LT(rel, limit) << type_name(type);
}

TEST_P(KernelByType, DotRowsMatchScalarAndFloatReference) {
  const TensorType type = GetParam();
  const TensorType vt = vec_dot_type(type);
  const int64_t n = 512, rows = 17;
  const size_t stride = row_bytes(type, n);
  std::vector<uint8_t> w(stride * rows), act(row_bytes(vt, n));
  std::vector<std::vector<float>> wf(rows, std::vector<float>(n));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> row = random_row(n, 100 + r, 0.5f + r * 0.1f);
    quantize_row(type, row.data(), w.data() + r * stride, n);
    dequantize_row(type, w.data() + r * stride, wf[r].data(), n);
  }
  std::vector<float> a = random_row(n, 7, 2.0f), af(n);
  quantize_row(vt, a.data(), act.data(), n);
  dequantize_row(vt, act.data(), af.data(), n);
  std::vector<float> simd(rows), scalar(rows);
  dot_rows(type, n, w.data(), stride, rows, act.data(), simd.data());
  dot_rows_scalar(type, n, w.data(), stride, rows, act.data(), scalar.data());
  for (int64_t r = 0; r < rows; ++r) {
    double ref = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) ref += (double)wf[r][i] * af[i], mag += std::fabs((double)wf[r][i] * af[i]);
    EXPECT_NEAR(simd[r], ref, 1e-5 * mag + 1e-6) << type_name(type) << " row " << r;
    EXPECT_NEAR(scalar[r], ref, 1e-5 * mag + 1e-6) << type_name(type) << " row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, KernelByType, ::testing::ValuesIn(kWeightTypes),
                         [](const auto& info) { return std::string(type_name(info.param)); });

// The SIMD dequantization gives exactly the scalar formulas' floats.
TEST_P(KernelByType, SimdDequantizationIsBitIdentical) {
  const TensorType type = GetParam();
  const int64_t n = 512;
  std::vector<float> x = random_row(n, 5, 3.0f), simd(n), scalar(n);
  std::vector<uint8_t> q(row_bytes(type, n));
  quantize_row(type, x.data(), q.data(), n);
  dequantize_row(type, q.data(), simd.data(), n);
  dequantize_row_scalar(type, q.data(), scalar.data(), n);
  EXPECT_EQ(simd, scalar) << type_name(type);
}

TEST(Fp16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32((uint16_t)h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << h;
  }
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);  // tie to even
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
}

}  // namespace
}  // namespace pginfer

namespace pginfer {
namespace {

// Products of many tokens are bit-identical to one-token products (prompts round as decoding does).
TEST_P(KernelByType, DotRowsTokensIsBitIdenticalToDotRows) {
  const TensorType type = GetParam();
  const TensorType vt = vec_dot_type(type);
  const int64_t n = 512, rows = 7, tokens = 11;
  const size_t stride = row_bytes(type, n), act_stride = row_bytes(vt, n);
  std::vector<uint8_t> w(stride * rows), act(act_stride * tokens);
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, random_row(n, 300 + r).data(), w.data() + r * stride, n);
  for (int64_t t = 0; t < tokens; ++t) quantize_row(vt, random_row(n, 900 + t, 3.0f).data(), act.data() + t * act_stride, n);
  std::vector<float> many(tokens * rows), one(rows);
  dot_rows_tokens(type, n, w.data(), stride, rows, act.data(), act_stride, tokens, many.data(), rows);
  for (int64_t t = 0; t < tokens; ++t) {
    dot_rows(type, n, w.data(), stride, rows, act.data() + t * act_stride, one.data());
    for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(many[t * rows + r], one[r]) << type_name(type) << " " << t << " " << r;
  }
}

}  // namespace
}  // namespace pginfer
