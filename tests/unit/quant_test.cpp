// tests/unit/quant_test.cpp: float16/bfloat16 conversions, decoding of hand-built blocks of every type,
// activation quantization (Q8_0, Q8_K) with known outputs, and quantize -> dequantize error bounds.
//
// Expected values are written from the formats' definitions (GGML's block layouts and formulas), not from
// our decoders; the block packers below follow the layouts as GGML documents them. When llama.cpp's
// libraries are installed (tests/reference), the quantizers and decoders are also compared with GGML's.
#include "kernels/cpu/quant.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace pginfer {
namespace {

float bits_to_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

uint32_t float_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) uint16_t f16c_from_float(float f) { return (uint16_t)_cvtss_sh(f, 0); }
__attribute__((target("f16c"))) float f16c_to_float(uint16_t h) { return _cvtsh_ss(h); }
bool have_f16c() { return __builtin_cpu_supports("f16c"); }
#else
uint16_t f16c_from_float(float) { return 0; }
float f16c_to_float(uint16_t) { return 0; }
bool have_f16c() { return false; }
#endif

// ---- float16 / bfloat16 ---------------------------------------------------------------------------------

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32((uint16_t)h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bits_to_float(float_bits(f)))) << h;
      EXPECT_EQ(fp32_to_fp16(f) & 0x7c00, 0x7c00) << h;  // still a NaN
      EXPECT_NE(fp32_to_fp16(f) & 0x3ff, 0) << h;
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << h;
  }
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x8000), -0.0f);
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
  EXPECT_EQ(fp16_to_fp32(0x7c00), INFINITY);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // halfway to the next binade rounds up: infinity
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);     // tie, even below
  EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);     // tie, even above
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and the smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // tie between subnormals 1 and 2
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(NAN) & 0x7e00, 0x7e00);  // quiet NaN
}

// fp32 -> fp16 against the processor's own conversion (F16C, what GGML's x86 builds use): every float
// next to a rounding boundary (each half, the midpoints between consecutive halves, one ulp either side)
// and a sweep through all float bit patterns.
TEST(Fp16, MatchesF16cEverywhere) {
  if (!have_f16c()) GTEST_SKIP() << "no F16C";
  auto check = [](float f) {
    const uint16_t want = f16c_from_float(f), got = fp32_to_fp16(f);
    ASSERT_EQ(got, want) << std::hex << float_bits(f);
  };
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const float a = fp16_to_fp32((uint16_t)(h | sign)), b = fp16_to_fp32((uint16_t)((h + 1) | sign));
      const float mid = (float)(((double)a + (double)b) / 2);  // exact: halves have few mantissa bits
      for (float f :
           {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), std::nextafter(mid, -INFINITY)}) {
        check(f);
      }
    }
  }
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) check(bits_to_float((uint32_t)u));
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = fp16_to_fp32((uint16_t)h), b = f16c_to_float((uint16_t)h);
    ASSERT_EQ(float_bits(a), float_bits(b)) << h;
  }
}

TEST(Bf16, RoundTripsAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32((uint16_t)h);
    ASSERT_EQ(float_bits(f), h << 16);
    if (std::isnan(f)) {
      EXPECT_EQ(fp32_to_bf16(f), (uint16_t)(h | 0x40)) << h;  // quiet, as GGML makes it
      continue;
    }
    ASSERT_EQ(fp32_to_bf16(f), h) << h;
  }
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3f808000)), 0x3f80);  // tie, even below
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3f818000)), 0x3f82);  // tie, even above
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3f808001)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x7f7fffff)), 0x7f80);  // largest float rounds to infinity
}

TEST(Fp16, RowConversionsUseTheScalarRules) {
  std::vector<float> x = {0.1f, -3.75f, 65519.0f, 1e-7f, 1.0f + 1.0f / 2048, -0.0f, 12345.678f, 3.14159f};
  std::vector<uint16_t> h(x.size()), b(x.size());
  quantize_row(TensorType::F16, x.data(), h.data(), (int64_t)x.size());
  quantize_row(TensorType::BF16, x.data(), b.data(), (int64_t)x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(h[i], fp32_to_fp16(x[i]));
    EXPECT_EQ(b[i], fp32_to_bf16(x[i]));
  }
  std::vector<float> back(x.size());
  dequantize_row(TensorType::F16, h.data(), back.data(), (int64_t)x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(back[i], fp16_to_fp32(h[i]));
  dequantize_row(TensorType::F32, x.data(), back.data(), (int64_t)x.size());
  EXPECT_EQ(back, x);
}

// ---- hand-built blocks --------------------------------------------------------------------------------

// Decodes with the dispatched and the scalar code and compares both with `expected` exactly.
void expect_decodes(TensorType type, const void* blocks, const std::vector<float>& expected) {
  std::vector<float> simd(expected.size()), scalar(expected.size());
  dequantize_row(type, blocks, simd.data(), (int64_t)expected.size());
  dequantize_row_scalar(type, blocks, scalar.data(), (int64_t)expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(simd[i], expected[i]) << type_name(type) << " value " << i;
    ASSERT_EQ(scalar[i], expected[i]) << type_name(type) << " value " << i;
  }
}

// Activations quantize to the same Q8_0 bytes with AVX2 as with the scalar code: random scales, exact
// halves (ties round to even), zeros, one huge value per block, tiny and denormal values.
TEST(QuantEncode, Q8_0Avx2EqualsScalar) {
  if (machine_simd_level() < SimdLevel::Avx2) GTEST_SKIP() << "no AVX2 here";
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t nb = 512;
  std::vector<float> x(nb * 32);
  for (int64_t b = 0; b < nb; ++b) {
    const float scale = std::ldexp(1.0f, (int)(b % 60) - 40);
    for (int j = 0; j < 32; ++j) {
      float v = nd(rng) * scale;
      if (b % 7 == 1) v = (float)((int)(rng() % 255) - 127) * 0.5f;  // x * 127 / 127 lands on halves
      if (b % 7 == 2) v = 0.0f;
      if (b % 7 == 3 && j == 5) v = 1e30f;
      if (b % 7 == 4) v = std::ldexp(nd(rng), -140);  // denormal
      x[b * 32 + j] = v;
    }
  }
  std::vector<BlockQ8_0> a(nb), b(nb);
  quantize_q8_0(x.data(), a.data(), nb);
  quantize_q8_0_avx2(x.data(), b.data(), nb);
  for (int64_t i = 0; i < nb; ++i) {
    ASSERT_EQ(a[i].d, b[i].d) << "block " << i;
    ASSERT_EQ(0, std::memcmp(a[i].qs, b[i].qs, 32)) << "block " << i;
  }
}

// The same for Q8_K (quantize_q8_k_avx2): also ties between the largest magnitudes of both signs (the first
// one's sign wins), and blocks with infinities or NaNs.
TEST(QuantEncode, Q8_KAvx2EqualsScalar) {
  if (machine_simd_level() < SimdLevel::Avx2) GTEST_SKIP() << "no AVX2 here";
  std::mt19937 rng(10);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t nb = 256;
  std::vector<float> x(nb * kQK_K);
  for (int64_t b = 0; b < nb; ++b) {
    const float scale = std::ldexp(1.0f, (int)(b % 60) - 40);
    for (int j = 0; j < kQK_K; ++j) {
      float v = nd(rng) * scale;
      if (b % 9 == 1) v = (float)((int)(rng() % 255) - 127) * 0.5f;  // lands on halves
      if (b % 9 == 2) v = 0.0f;
      if (b % 9 == 3 && j == 200) v = 1e30f;
      if (b % 9 == 4) v = std::ldexp(nd(rng), -140);  // denormal
      if (b % 9 == 5 && (j == 17 || j == 90)) v = j == 17 ? -50.0f : 50.0f;  // a tie: the first, -50, wins
      if (b % 9 == 6 && j == 3) v = INFINITY;
      if (b % 9 == 7 && j == 100) v = NAN;
      x[b * kQK_K + j] = v;
    }
  }
  std::vector<BlockQ8_K> a(nb), b(nb);
  quantize_q8_k(x.data(), a.data(), nb);
  quantize_q8_k_avx2(x.data(), b.data(), nb);
  for (int64_t i = 0; i < nb; ++i) {
    ASSERT_EQ(0, std::memcmp(&a[i].d, &b[i].d, sizeof(float))) << "block " << i;
    ASSERT_EQ(0, std::memcmp(a[i].qs, b[i].qs, sizeof(a[i].qs))) << "block " << i;
    ASSERT_EQ(0, std::memcmp(a[i].bsums, b[i].bsums, sizeof(a[i].bsums))) << "block " << i;
  }
  EXPECT_GT(a[5].d, 0.0f);  // block 5: the first of -50 and 50 is the max, iscale = -127 / -50 > 0
}

TEST(QuantDecode, Q8_0) {
  BlockQ8_0 b[2];
  b[0].d = 0x3800;  // 0.5
  b[1].d = 0xb400;  // -0.25
  std::vector<float> expected;
  for (int j = 0; j < 32; ++j) b[0].qs[j] = (int8_t)(j * 8 - 128), expected.push_back(0.5f * (j * 8 - 128));
  for (int j = 0; j < 32; ++j) b[1].qs[j] = (int8_t)(127 - j), expected.push_back(-0.25f * (127 - j));
  expect_decodes(TensorType::Q8_0, b, expected);
}

TEST(QuantDecode, Q4_0) {
  BlockQ4_0 b;
  b.d = 0x4000;  // 2
  std::vector<float> expected(32);
  for (int j = 0; j < 16; ++j) {
    const int lo = j, hi = 15 - j;  // value j in the low nibble of byte j, value j + 16 in its high nibble
    b.qs[j] = (uint8_t)(lo | (hi << 4));
    expected[j] = 2.0f * (lo - 8);
    expected[j + 16] = 2.0f * (hi - 8);
  }
  expect_decodes(TensorType::Q4_0, &b, expected);
}

// Packs 6-bit scales and mins of 8 sub-blocks as GGML's Q4_K/Q5_K: bytes 0-3 hold scales 0-3 in their low
// 6 bits and the top 2 bits of scales 4-7; bytes 4-7 the same for the mins; bytes 8-11 the low 4 bits of
// scale (low nibble) and min (high nibble) 4-7.
void pack_k_scales(const int* sc, const int* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
  }
}

const int kScales[8] = {1, 17, 33, 63, 5, 20, 40, 63};
const int kMins[8] = {0, 3, 31, 63, 16, 48, 7, 60};

TEST(QuantDecode, Q4_K) {
  BlockQ4_K b;
  b.d = 0x3800;     // 0.5
  b.dmin = 0x3400;  // 0.25
  pack_k_scales(kScales, kMins, b.scales);
  std::vector<float> expected(256);
  std::memset(b.qs, 0, sizeof(b.qs));
  for (int v = 0; v < 256; ++v) {
    const int q = (v * 7 + 3) % 16;
    // 64 values per 32 bytes: the first 32 in the low nibbles, the next 32 in the high nibbles.
    const int chunk = v / 64, t = v % 64;
    b.qs[32 * chunk + t % 32] |= (uint8_t)(t < 32 ? q : q << 4);
    const int j = v / 32;
    expected[v] = 0.5f * kScales[j] * q - 0.25f * kMins[j];
  }
  expect_decodes(TensorType::Q4_K, &b, expected);
}

TEST(QuantDecode, Q5_K) {
  BlockQ5_K b;
  b.d = 0x3400;     // 0.25
  b.dmin = 0x3800;  // 0.5
  pack_k_scales(kScales, kMins, b.scales);
  std::memset(b.qs, 0, sizeof(b.qs));
  std::memset(b.qh, 0, sizeof(b.qh));
  std::vector<float> expected(256);
  for (int v = 0; v < 256; ++v) {
    const int q = (v * 13 + 5) % 32;
    const int chunk = v / 64, t = v % 64;
    b.qs[32 * chunk + t % 32] |= (uint8_t)(t < 32 ? (q & 15) : (q & 15) << 4);
    // The fifth bit: bit 2*chunk of qh[t] for the first 32 values of a chunk, bit 2*chunk+1 for the next.
    if (q & 16) b.qh[t % 32] |= (uint8_t)(1 << (2 * chunk + (t < 32 ? 0 : 1)));
    const int j = v / 32;
    expected[v] = 0.25f * kScales[j] * q - 0.5f * kMins[j];
  }
  expect_decodes(TensorType::Q5_K, &b, expected);
}

TEST(QuantDecode, Q6_K) {
  BlockQ6_K b;
  b.d = 0x3000;  // 0.125
  const int scales[16] = {1, -2, 3, -4, 127, -128, 7, 0, 9, -10, 11, 64, -64, 14, 15, -16};
  for (int j = 0; j < 16; ++j) b.scales[j] = (int8_t)scales[j];
  std::memset(b.ql, 0, sizeof(b.ql));
  std::memset(b.qh, 0, sizeof(b.qh));
  std::vector<float> expected(256);
  for (int v = 0; v < 256; ++v) {
    const int q = (v * 11 + 7) % 64;
    // Per half of 128 values: group g of 32 takes ql[l] (g = 0) or ql[32 + l] (g = 1) low nibbles, then the
    // same bytes' high nibbles (g = 2, 3); bits 2g and 2g+1 of qh[l] hold the top two bits.
    const int h = v / 128, g = (v % 128) / 32, l = v % 32;
    b.ql[64 * h + 32 * (g % 2) + l] |= (uint8_t)(g < 2 ? (q & 15) : (q & 15) << 4);
    b.qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * g));
    expected[v] = 0.125f * scales[v / 16] * (q - 32);
  }
  expect_decodes(TensorType::Q6_K, &b, expected);
}

TEST(QuantDecode, Q8_K) {
  BlockQ8_K b;
  b.d = 0.75f;
  std::vector<float> expected(256);
  for (int j = 0; j < 256; ++j) b.qs[j] = (int8_t)(j - 128), expected[j] = 0.75f * (j - 128);
  expect_decodes(TensorType::Q8_K, &b, expected);
}

// ---- activation quantization (bit-identical to GGML's) -----------------------------------------------

TEST(QuantActivations, Q8_0RoundsHalfToEvenWithScale127OverMax) {
  // amax 127: d = 1 (stored exactly), id = 127 / 127 = 1, so q = round(x) with ties to even, as GGML's
  // AVX quantize_row_q8_0 (_mm256_round_ps) computes; its reference roundf would give 3, -3, 1, 5.
  std::vector<float> x(32, 0.0f);
  const float v[8] = {127.0f, 2.5f, -2.5f, 0.5f, 4.5f, 3.5f, -126.6f, 1.49f};
  for (int i = 0; i < 8; ++i) x[i] = v[i];
  BlockQ8_0 b;
  quantize_row(TensorType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  const int want[8] = {127, 2, -2, 0, 4, 4, -127, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(b.qs[i], want[i]) << i;
  for (int i = 8; i < 32; ++i) EXPECT_EQ(b.qs[i], 0);
}

TEST(QuantActivations, Q8_0ScaleIsAmaxOver127InHalf) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = (i % 2 ? -1.0f : 1.0f) * 0.01f * i;  // block 2: amax 0.63
  BlockQ8_0 b[2];
  quantize_row(TensorType::Q8_0, x.data(), b, 64);
  for (int k = 0; k < 2; ++k) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[32 * k + i]));
    EXPECT_EQ(b[k].d, fp32_to_fp16(amax / 127.0f));
    const float id = 127.0f / amax;
    for (int i = 0; i < 32; ++i) EXPECT_EQ(b[k].qs[i], (int)std::nearbyint(x[32 * k + i] * id)) << k << " " << i;
  }
  EXPECT_EQ(b[1].qs[31], -127);
}

TEST(QuantActivations, Q8_0ZeroBlock) {
  std::vector<float> x(32, 0.0f);
  BlockQ8_0 b;
  std::memset(&b, 0x55, sizeof b);
  quantize_row(TensorType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b.qs[i], 0);
}

TEST(QuantActivations, Q8_KKnownOutputs) {
  // The value of largest magnitude is -254 (first of the ties with 254): iscale = -127 / -254 = 0.5,
  // d = 1 / iscale = 2; q = nearest_int(0.5 * x) with ties to even, capped at 127.
  std::vector<float> x(256, 0.0f);
  x[0] = 5.0f;                                 // 2.5 -> 2
  x[1] = 7.0f;                                 // 3.5 -> 4
  x[2] = -3.0f;                                // -1.5 -> -2
  x[3] = -254.0f;                              // -127
  x[4] = 254.0f;                               // 127
  x[5] = 1.0f;                                 // 0.5 -> 0
  for (int i = 16; i < 32; ++i) x[i] = 10.0f;  // 5 each: bsums[1] = 80
  BlockQ8_K b;
  quantize_row(TensorType::Q8_K, x.data(), &b, 256);
  EXPECT_EQ(b.d, 2.0f);
  const int want[6] = {2, 4, -2, -127, 127, 0};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(b.qs[i], want[i]) << i;
  EXPECT_EQ(b.bsums[0], 2 + 4 - 2 - 127 + 127);
  EXPECT_EQ(b.bsums[1], 80);
  for (int j = 2; j < 16; ++j) EXPECT_EQ(b.bsums[j], 0);
}

TEST(QuantActivations, Q8_KPositiveMaxGivesNegativeScale) {
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = 0.01f * (i - 100);  // max magnitude 1.55 at i = 255
  BlockQ8_K b;
  quantize_row(TensorType::Q8_K, x.data(), &b, 256);
  const float iscale = -127.0f / x[255];
  EXPECT_EQ(b.d, 1 / iscale);
  EXPECT_LT(b.d, 0.0f);
  EXPECT_EQ(b.qs[255], -127);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(b.qs[i], std::min(127, (int)std::nearbyint(iscale * x[i]))) << i;
  for (int j = 0; j < 16; ++j) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += b.qs[16 * j + i];
    EXPECT_EQ(b.bsums[j], s);
  }
}

TEST(QuantActivations, Q8_KZeroBlock) {
  std::vector<float> x(512, 0.0f);
  x[300] = 1.0f;  // second block non-zero
  BlockQ8_K b[2];
  std::memset(b, 0x55, sizeof b);
  quantize_row(TensorType::Q8_K, x.data(), b, 512);
  EXPECT_EQ(b[0].d, 0.0f);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(b[0].qs[i], 0);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[0].bsums[j], 0);
  EXPECT_EQ(b[1].qs[44], -127);
}

// ---- weight quantization --------------------------------------------------------------------------------

std::vector<float> normal_row(int64_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

double relative_rmse(TensorType type, const std::vector<float>& x) {
  const int64_t n = (int64_t)x.size();
  std::vector<uint8_t> q(row_bytes(type, n));
  std::vector<float> y(n);
  quantize_row(type, x.data(), q.data(), n);
  dequantize_row(type, q.data(), y.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) err += (double)(x[i] - y[i]) * (x[i] - y[i]), ref += (double)x[i] * x[i];
  return std::sqrt(err / ref);
}

struct ErrorBound {
  TensorType type;
  double limit;  // relative RMS error on normal data (GGML's quantizers, and ours, reach about 0.75x these)
};

class QuantError : public ::testing::TestWithParam<ErrorBound> {};

TEST_P(QuantError, QuantizeDequantizeIsClose) {
  const ErrorBound e = GetParam();
  for (uint64_t seed : {1, 2, 3}) {
    for (float scale : {1e-3f, 0.02f, 1.0f, 300.0f}) {
      const std::vector<float> x = normal_row(4096, seed, scale);
      EXPECT_LT(relative_rmse(e.type, x), e.limit) << type_name(e.type) << " scale " << scale;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantError,
                         ::testing::Values(ErrorBound{TensorType::F16, 3e-4}, ErrorBound{TensorType::BF16, 2.5e-3},
                                           ErrorBound{TensorType::Q8_0, 0.008}, ErrorBound{TensorType::Q8_K, 0.01},
                                           ErrorBound{TensorType::Q6_K, 0.027}, ErrorBound{TensorType::Q5_K, 0.05},
                                           ErrorBound{TensorType::Q4_K, 0.095}, ErrorBound{TensorType::Q4_0, 0.115}),
                         [](const auto& info) { return std::string(type_name(info.param.type)); });

// More bits, less error; and each type well inside what its bits allow.
TEST(QuantError, OrderedByBits) {
  const std::vector<float> x = normal_row(8192, 11, 0.05f);
  const double q4_0 = relative_rmse(TensorType::Q4_0, x), q4_k = relative_rmse(TensorType::Q4_K, x),
               q5_k = relative_rmse(TensorType::Q5_K, x), q6_k = relative_rmse(TensorType::Q6_K, x),
               q8_0 = relative_rmse(TensorType::Q8_0, x);
  EXPECT_LT(q4_k, q4_0);
  EXPECT_LT(q5_k, q4_k * 0.6);
  EXPECT_LT(q6_k, q5_k * 0.6);
  EXPECT_LT(q8_0, q6_k * 0.5);
}

TEST(QuantWeights, ZeroRowsStayZero) {
  const TensorType types[] = {TensorType::Q4_0, TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
  for (TensorType t : types) {
    std::vector<float> x(512, 0.0f), y(512, 1.0f);
    std::vector<uint8_t> q(row_bytes(t, 512));
    quantize_row(t, x.data(), q.data(), 512);
    dequantize_row(t, q.data(), y.data(), 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
  }
}

// Values on a type's own grid come back exactly.
TEST(QuantWeights, GridValuesAreExact) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = 0.25f * ((i * 5) % 16 - 8);  // -8..7 times 0.25, with -2 present
  BlockQ4_0 b4;
  quantize_row(TensorType::Q4_0, x.data(), &b4, 32);
  std::vector<float> y(32);
  dequantize_row(TensorType::Q4_0, &b4, y.data(), 32);
  EXPECT_EQ(y, x);
  for (int i = 0; i < 32; ++i) x[i] = 0.5f * (i - 16) + (i == 0 ? -55.5f : 0.0f);  // max -63.5
  BlockQ8_0 b8;
  quantize_row(TensorType::Q8_0, x.data(), &b8, 32);
  dequantize_row(TensorType::Q8_0, &b8, y.data(), 32);
  EXPECT_EQ(y, x);
}

// Q4_0 follows GGML's reference: the value of largest magnitude maps to -8 (d = max / -8).
TEST(QuantWeights, Q4_0ScaleFromSignedMax) {
  std::vector<float> x(32, 0.1f);
  x[7] = 3.2f;
  BlockQ4_0 b;
  quantize_row(TensorType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(fp16_to_fp32(b.d), fp16_to_fp32(fp32_to_fp16(3.2f / -8)));
  EXPECT_EQ(b.qs[7] & 0x0f, 0);  // 3.2 -> level 0, i.e. -8 * d
  x[7] = -3.2f;
  quantize_row(TensorType::Q4_0, x.data(), &b, 32);
  EXPECT_GT(fp16_to_fp32(b.d), 0.0f);
  EXPECT_EQ(b.qs[7] & 0x0f, 0);
}

// The K-quant quantizers search scales: on data with one outlier per sub-block they must beat a plain
// range-based choice (levels spread over [min, max]) by a clear margin.
TEST(QuantWeights, KQuantSearchBeatsRangeScaling) {
  std::vector<float> x = normal_row(2048, 5, 1.0f);
  for (size_t i = 0; i < x.size(); i += 32) x[i] *= 4.0f;
  double range_err = 0, ref = 0;
  for (size_t s = 0; s < x.size(); s += 32) {
    float lo = 0, hi = 0;
    for (int i = 0; i < 32; ++i) lo = std::fmin(lo, x[s + i]), hi = std::fmax(hi, x[s + i]);
    const float step = (hi - lo) / 15;
    for (int i = 0; i < 32; ++i) {
      const float q = lo + step * std::nearbyint((x[s + i] - lo) / step);
      range_err += (double)(q - x[s + i]) * (q - x[s + i]), ref += (double)x[s + i] * x[s + i];
    }
  }
  EXPECT_LT(relative_rmse(TensorType::Q4_K, x), 0.95 * std::sqrt(range_err / ref));
}

// The AVX2 scale searches (8 candidates per register) choose exactly what the scalar ones choose.
TEST(QuantWeights, SimdScaleSearchesAreBitIdentical) {
  if (machine_simd_level() < SimdLevel::Avx2) GTEST_SKIP() << "no AVX2";
  std::mt19937_64 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int trial = 0; trial < 3000; ++trial) {
    float x[32], w[32];
    const int kind = trial % 6;
    for (int i = 0; i < 32; ++i) {
      x[i] = kind == 0   ? nd(rng)
             : kind == 1 ? std::fabs(nd(rng)) + 0.5f
             : kind == 2 ? -std::fabs(nd(rng))
             : kind == 3 ? (i == 5 ? 9.0f : 0.01f * nd(rng))
             : kind == 4 ? 0.25f * (i % 7)
                         : 1e-4f * nd(rng);
    }
    if (trial % 97 == 0) std::fill(x, x + 32, 0.0f);
    if (trial % 89 == 0) std::fill(x, x + 32, 1.5f);
    float sum_x2 = 0;
    for (float v : x) sum_x2 += v * v;
    for (int i = 0; i < 32; ++i) w[i] = std::sqrt(sum_x2 / 32) + std::fabs(x[i]);
    for (int nmax : {15, 31}) {
      uint8_t l1[32], l2[32];
      float m1 = -1, m2 = -2;
      const float s1 =
          make_qkx2_quants_scalar(32, nmax, x, w, l1, &m1, nmax == 15 ? -1.0f : -0.5f, 0.1f, nmax == 15 ? 20 : 15);
      const float s2 =
          make_qkx2_quants_avx2(32, nmax, x, w, l2, &m2, nmax == 15 ? -1.0f : -0.5f, 0.1f, nmax == 15 ? 20 : 15);
      ASSERT_EQ(float_bits(s1), float_bits(s2)) << trial;
      ASSERT_EQ(float_bits(m1), float_bits(m2)) << trial;
      ASSERT_EQ(0, std::memcmp(l1, l2, 32)) << trial;
    }
    int8_t q1[16], q2[16];
    const float s1 = make_qx_quants_scalar(16, 32, x + 16 * (trial % 2), q1);
    const float s2 = make_qx_quants_avx2(16, 32, x + 16 * (trial % 2), q2);
    ASSERT_EQ(float_bits(s1), float_bits(s2)) << trial;
    ASSERT_EQ(0, std::memcmp(q1, q2, 16)) << trial;
  }
}

TEST(QuantWeights, DequantizeSimdMatchesScalar) {
  const TensorType types[] = {TensorType::F16,  TensorType::BF16, TensorType::Q4_0, TensorType::Q8_0,
                              TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K};
  for (TensorType t : types) {
    const std::vector<float> x = normal_row(1024, 9, 2.0f);
    std::vector<uint8_t> q(row_bytes(t, 1024));
    quantize_row(t, x.data(), q.data(), 1024);
    std::vector<float> a(1024), b(1024);
    dequantize_row(t, q.data(), a.data(), 1024);
    dequantize_row_scalar(t, q.data(), b.data(), 1024);
    EXPECT_EQ(a, b) << type_name(t);
  }
}

// ---- GGML's reference quantizers (libggml-base, as llama-quantize runs them) -------------------------

using GgmlQuantize = void (*)(const float* x, void* y, int64_t n);
using GgmlDequantize = void (*)(const void* x, float* y, int64_t n);

// libggml-base.so from node-llama-cpp's prebuilt libraries (`npm ci` in tests/reference), or null.
void* ggml_base() {
  static void* handle = [] {
    const std::string here = __FILE__;
    const std::string dir =
        here.substr(0, here.rfind("/unit/")) + "/reference/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/";
    return dlopen((dir + "libggml-base.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  }();
  return handle;
}

// Our quantizers produce GGML's reference blocks (bit for bit for the K-quants, Q4_0 and Q8_K; Q8_0 rounds
// as GGML's x86 activation code, which differs from its reference in rare blocks), and decode as GGML does.
TEST(QuantLlamaCpp, MatchesGgmlReferenceQuantizers) {
  void* base = ggml_base();
  if (!base) GTEST_SKIP() << "llama.cpp's libraries are not installed under tests/reference";
  struct Case {
    TensorType type;
    const char* quantize;
    const char* dequantize;
    double max_differing_blocks;  // fraction
  };
  const Case cases[] = {{TensorType::Q4_0, "quantize_row_q4_0_ref", "dequantize_row_q4_0", 0.0},
                        {TensorType::Q8_0, "quantize_row_q8_0_ref", "dequantize_row_q8_0", 1e-3},
                        {TensorType::Q4_K, "quantize_row_q4_K_ref", "dequantize_row_q4_K", 0.0},
                        {TensorType::Q5_K, "quantize_row_q5_K_ref", "dequantize_row_q5_K", 0.0},
                        {TensorType::Q6_K, "quantize_row_q6_K_ref", "dequantize_row_q6_K", 0.0},
                        {TensorType::Q8_K, "quantize_row_q8_K_ref", "dequantize_row_q8_K", 0.0}};
  std::mt19937_64 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Case& c : cases) {
    const auto quantize = reinterpret_cast<GgmlQuantize>(dlsym(base, c.quantize));
    const auto dequantize = reinterpret_cast<GgmlDequantize>(dlsym(base, c.dequantize));
    ASSERT_TRUE(quantize && dequantize) << c.quantize;
    const int64_t n = 4096;
    const size_t block = type_traits(c.type)->block_bytes, bytes = row_bytes(c.type, n);
    int64_t blocks = 0, differing = 0;
    for (int row = 0; row < 40; ++row) {
      std::vector<float> x(n);
      const float scale = row % 4 == 0 ? 1e-3f : row % 4 == 1 ? 0.05f : row % 4 == 2 ? 3.0f : 0.02f;
      for (int64_t i = 0; i < n; ++i) x[i] = scale * nd(rng) * (row % 4 == 3 && i % 37 == 0 ? 12.0f : 1.0f);
      std::vector<uint8_t> ours(bytes), theirs(bytes);
      quantize_row(c.type, x.data(), ours.data(), n);
      quantize(x.data(), theirs.data(), n);
      for (size_t b = 0; b < bytes / block; ++b, ++blocks) {
        differing += std::memcmp(ours.data() + b * block, theirs.data() + b * block, block) != 0;
      }
      std::vector<float> y_ours(n), y_theirs(n);
      dequantize_row(c.type, ours.data(), y_ours.data(), n);
      dequantize(ours.data(), y_theirs.data(), n);
      ASSERT_EQ(0, std::memcmp(y_ours.data(), y_theirs.data(), n * sizeof(float))) << type_name(c.type);
    }
    EXPECT_LE(differing, c.max_differing_blocks * blocks) << type_name(c.type) << ": " << differing << " of " << blocks;
  }
}

}  // namespace
}  // namespace pginfer
