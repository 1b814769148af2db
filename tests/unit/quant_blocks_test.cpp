// tests/unit/quant_blocks_test.cpp: every tensor type decoded from blocks built by hand from the format's
// definition (GGML's block layouts), with the expected values written independently of our decoders.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot.h"

namespace pginfer {
namespace {

// Decodes with both the dispatched (SIMD) and the scalar code and checks both against `expected`.
template <typename Block>
void expect_decodes(TensorType type, const Block& block, const std::vector<float>& expected) {
  std::vector<float> simd(expected.size()), scalar(expected.size());
  dequantize_row(type, &block, simd.data(), (int64_t)expected.size());
  dequantize_row_scalar(type, &block, scalar.data(), (int64_t)expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(simd[i], expected[i]) << type_name(type) << " value " << i;
    ASSERT_EQ(scalar[i], expected[i]) << type_name(type) << " value " << i;
  }
}

TEST(QuantBlocks, F16AndBF16) {
  const uint16_t halves[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
  std::vector<float> out(4);
  dequantize_row(TensorType::F16, halves, out.data(), 4);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f}));
  const uint16_t brains[2] = {0x3f80, 0xc040};
  dequantize_row(TensorType::BF16, brains, out.data(), 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
}

TEST(QuantBlocks, Q8_0) {
  BlockQ8_0 b;
  b.d = 0x3400;  // 0.25
  std::vector<float> expected(32);
  for (int j = 0; j < 32; ++j) {
    b.qs[j] = (int8_t)(j * 9 - 140 < -127 ? -127 : (j * 9 - 140 > 127 ? 127 : j * 9 - 140));
    expected[j] = 0.25f * b.qs[j];
  }
  expect_decodes(TensorType::Q8_0, b, expected);
}

TEST(QuantBlocks, Q4_0) {
  BlockQ4_0 b;
  b.d = 0x3800;  // 0.5
  std::vector<float> expected(32);
  for (int j = 0; j < 16; ++j) {
    const int lo = j, hi = 15 - j;  // value j in the low nibble, value j + 16 in the high one
    b.qs[j] = (uint8_t)(lo | (hi << 4));
    expected[j] = (lo - 8) * 0.5f;
    expected[j + 16] = (hi - 8) * 0.5f;
  }
  expect_decodes(TensorType::Q4_0, b, expected);
}

// The 12 bytes that hold eight 6-bit scales and mins of a Q4_K/Q5_K super-block: sub-blocks 0-3 in the
// low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 with their low 4 bits in bytes 8-11
// (scale low nibble, min high nibble) and their top 2 bits in the top bits of bytes 0-3 and 4-7.
void pack_k_scales(const int sc[8], const int mn[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

const int kScales[8] = {1, 2, 3, 4, 17, 18, 33, 63};
const int kMins[8] = {0, 5, 10, 15, 16, 34, 47, 60};

TEST(QuantBlocks, Q4_K) {
  BlockQ4_K b;
  b.d = 0x3c00;     // 1.0
  b.dmin = 0x3800;  // 0.5
  pack_k_scales(kScales, kMins, b.scales);
  std::vector<float> expected(256);
  // Element i lies in 64-value chunk c = i / 64; its 32 low-nibble values come first (sub-block 2c), then
  // the 32 high nibbles (sub-block 2c + 1), both from bytes qs[32c .. 32c + 31].
  for (int l = 0; l < 128; ++l) b.qs[l] = (uint8_t)((l % 16) | (((l * 3) % 16) << 4));
  for (int i = 0; i < 256; ++i) {
    const int c = i / 64, within = i % 64, sub = 2 * c + within / 32, byte = 32 * c + within % 32;
    const int q = within < 32 ? (b.qs[byte] & 15) : (b.qs[byte] >> 4);
    expected[i] = 1.0f * kScales[sub] * q - 0.5f * kMins[sub];
  }
  expect_decodes(TensorType::Q4_K, b, expected);
}

TEST(QuantBlocks, Q5_K) {
  BlockQ5_K b;
  b.d = 0x3400;     // 0.25
  b.dmin = 0x3c00;  // 1.0
  pack_k_scales(kScales, kMins, b.scales);
  for (int l = 0; l < 128; ++l) b.qs[l] = (uint8_t)(((l * 5) % 16) | ((l % 16) << 4));
  for (int l = 0; l < 32; ++l) b.qh[l] = (uint8_t)(l * 37 + 11);
  std::vector<float> expected(256);
  // The fifth bit of the value at position l of sub-block s is bit s of qh[l].
  for (int i = 0; i < 256; ++i) {
    const int c = i / 64, within = i % 64, sub = 2 * c + within / 32, l = within % 32, byte = 32 * c + l;
    const int low = within < 32 ? (b.qs[byte] & 15) : (b.qs[byte] >> 4);
    const int q = low + (((b.qh[l] >> sub) & 1) << 4);
    expected[i] = 0.25f * kScales[sub] * q - 1.0f * kMins[sub];
  }
  expect_decodes(TensorType::Q5_K, b, expected);
}

TEST(QuantBlocks, Q6_K) {
  BlockQ6_K b;
  b.d = 0x3000;  // 0.125
  int q[256];
  for (int i = 0; i < 256; ++i) q[i] = (i * 7 + 3) % 64;
  for (int s = 0; s < 16; ++s) b.scales[s] = (int8_t)(s * 9 - 70);
  // Each half of 128 values: ql bytes 0-31 hold values 0-31 (low nibble) and 64-95 (high), bytes 32-63
  // hold 32-63 and 96-127; qh byte l holds the top two bits of values l, l+32, l+64, l+96.
  for (int half_index = 0; half_index < 2; ++half_index) {
    const int* v = q + 128 * half_index;
    uint8_t* ql = b.ql + 64 * half_index;
    uint8_t* qh = b.qh + 32 * half_index;
    for (int l = 0; l < 32; ++l) {
      ql[l] = (uint8_t)((v[l] & 15) | ((v[l + 64] & 15) << 4));
      ql[l + 32] = (uint8_t)((v[l + 32] & 15) | ((v[l + 96] & 15) << 4));
      qh[l] = (uint8_t)((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
    }
  }
  std::vector<float> expected(256);
  for (int i = 0; i < 256; ++i) expected[i] = 0.125f * b.scales[i / 16] * (float)(q[i] - 32);
  expect_decodes(TensorType::Q6_K, b, expected);
}

TEST(QuantBlocks, Q8_KActivationsAsGgmlQuantizesThem) {
  // iscale = -127 / (the value of largest magnitude, here -2.54) = 50: that value maps to -127, d = 1 / 50,
  // and products round half to even.
  std::vector<float> x(256, 0.0f);
  x[0] = -2.54f;
  x[1] = 1.0f;
  x[17] = 0.01f;
  BlockQ8_K b;
  quantize_row(TensorType::Q8_K, x.data(), &b, 256);
  EXPECT_FLOAT_EQ(b.d, 1.0f / (-127.0f / -2.54f));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[1], 50);
  EXPECT_EQ(b.qs[17], 0);  // 0.5 rounds to even 0
  EXPECT_EQ(b.bsums[0], -127 + 50);
  EXPECT_EQ(b.bsums[1], 0);
}

TEST(QuantBlocks, Q8_0ActivationsAsGgmlQuantizesThem) {
  // llama.cpp's x86 quantizer: d = amax / 127 stored as F16, values times 127 / amax rounded half to even.
  std::vector<float> x(32, 0.0f);
  x[0] = 12.7f;
  x[1] = 0.05f;   // 0.5 after scaling: rounds to even 0
  x[2] = 0.15f;   // 1.5: rounds to 2
  x[3] = -6.35f;  // -63.5: rounds to -64
  BlockQ8_0 b;
  quantize_row(TensorType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, fp32_to_fp16(0.1f));
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], 0);
  EXPECT_EQ(b.qs[2], 2);
  EXPECT_EQ(b.qs[3], -64);
}

}  // namespace
}  // namespace pginfer
