// tests/unit/vec_dot_test.cpp: dot products of weight rows with activations, at every SIMD level the
// machine has: against a float reference, bit for bit across levels (the scalar code emulates the AVX2
// kernels; the integer types give the same bits at every level), independent of how many rows a call
// gets, and a hand-computed Q8_0 case that pins our block-exact order (kernels/cpu/vec_dot_q8_0.h). When
// llama.cpp's CPU backends are installed (tests/reference, node-llama-cpp's prebuilt libraries), every level
// is also compared with GGML's own kernels: bit for bit, and for Q8_0 within the rounding of a reordered sum.
#include "kernels/cpu/vec_dot.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/vec_dot_impl.h"

namespace pginfer {
namespace {

const TensorType kWeightTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
                                   TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> v;
  for (int l = 0; l <= (int)machine_simd_level(); ++l) v.push_back((SimdLevel)l);
  return v;
}

bool is_float_type(TensorType t) { return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16; }

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// A weight matrix (quantized from normal values with per-row scales) and one activation row, with their
// dequantized floats.
struct Problem {
  TensorType type;
  int64_t n, rows;
  size_t stride;
  std::vector<uint8_t> w, act;
  std::vector<float> wf, af;

  Problem(TensorType t, int64_t n_, int64_t rows_, uint64_t seed) : type(t), n(n_), rows(rows_) {
    stride = row_bytes(t, n);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    w.resize(stride * rows);
    wf.resize(n * rows);
    std::vector<float> row(n);
    for (int64_t r = 0; r < rows; ++r) {
      const float scale = 0.01f * (1 + r % 7);
      for (float& x : row) x = scale * nd(rng);
      quantize_row(t, row.data(), w.data() + r * stride, n);
      dequantize_row(t, w.data() + r * stride, wf.data() + r * n, n);
    }
    const TensorType vt = vec_dot_type(t);
    act.resize(row_bytes(vt, n));
    af.resize(n);
    for (float& x : row) x = 3.0f * nd(rng);
    quantize_row(vt, row.data(), act.data(), n);
    dequantize_row(vt, act.data(), af.data(), n);
  }

  std::vector<float> run(SimdLevel level) const {
    std::vector<float> out(rows, NAN);
    dot_rows_level(level, type, n, w.data(), stride, rows, act.data(), out.data());
    return out;
  }

  // Float reference of row r and the sum of the products' magnitudes (for tolerances).
  void reference(int64_t r, double* dot, double* mag) const {
    *dot = 0, *mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double p = (double)wf[r * n + i] * af[i];
      *dot += p, *mag += std::fabs(p);
    }
  }
};

TEST(VecDot, VecDotTypes) {
  EXPECT_EQ(vec_dot_type(TensorType::F32), TensorType::F32);
  EXPECT_EQ(vec_dot_type(TensorType::F16), TensorType::F16);
  EXPECT_EQ(vec_dot_type(TensorType::BF16), TensorType::BF16);
  EXPECT_EQ(vec_dot_type(TensorType::Q8_0), TensorType::Q8_0);
  EXPECT_EQ(vec_dot_type(TensorType::Q4_0), TensorType::Q8_0);
  EXPECT_EQ(vec_dot_type(TensorType::Q4_K), TensorType::Q8_K);
  EXPECT_EQ(vec_dot_type(TensorType::Q5_K), TensorType::Q8_K);
  EXPECT_EQ(vec_dot_type(TensorType::Q6_K), TensorType::Q8_K);
}

TEST(VecDot, LevelsAndNames) {
  EXPECT_LE(simd_level(), machine_simd_level());
  EXPECT_STREQ(simd_level_name(SimdLevel::Scalar), "scalar");
  EXPECT_STREQ(simd_level_name(SimdLevel::Avx2), "avx2");
  EXPECT_STREQ(simd_level_name(SimdLevel::Avx512), "avx512");
  if (has_avx512_vnni()) {
    EXPECT_EQ(simd_level(), SimdLevel::Avx512);
  }
  std::printf("machine SIMD level: %s\n", simd_level_name(machine_simd_level()));
}

class VecDotByType : public ::testing::TestWithParam<TensorType> {};

// Every level against the float reference, for odd row counts and lengths with leftovers (float types).
TEST_P(VecDotByType, MatchesFloatReferenceAtEveryLevel) {
  const TensorType type = GetParam();
  const int64_t block = type_traits(type)->block_elems;
  const int64_t lengths[] = {256, 2048, is_float_type(type) ? 64 * 5 + 37 : 512 + 2 * block};
  for (int64_t n : lengths) {
    if (n % block) continue;
    for (int64_t rows : {1, 3, 17}) {
      const Problem p(type, n, rows, 100 + n + rows);
      for (SimdLevel level : levels()) {
        const std::vector<float> out = p.run(level);
        for (int64_t r = 0; r < rows; ++r) {
          double ref, mag;
          p.reference(r, &ref, &mag);
          EXPECT_NEAR(out[r], ref, 2e-6 * mag + 1e-7)
              << type_name(type) << " " << simd_level_name(level) << " n=" << n << " rows=" << rows << " r=" << r;
        }
      }
    }
  }
}

// The scalar code computes what the AVX2 kernels compute, bit for bit, for every type; for the integer
// types the AVX-512 kernels do too (only the float types' AVX-512 loops follow GGML's AVX-512 order).
TEST_P(VecDotByType, LevelsAreBitIdentical) {
  const TensorType type = GetParam();
  for (int64_t n : {256, 4096, 64 * 7 + 45}) {
    if (n % type_traits(type)->block_elems) continue;
    const Problem p(type, n, 23, 7 + n);
    const std::vector<float> scalar = p.run(SimdLevel::Scalar);
    for (SimdLevel level : levels()) {
      if (level == SimdLevel::Avx512 && is_float_type(type)) continue;
      const std::vector<float> out = p.run(level);
      for (int64_t r = 0; r < p.rows; ++r) {
        EXPECT_EQ(bits(out[r]), bits(scalar[r]))
            << type_name(type) << " " << simd_level_name(level) << " n=" << n << " r=" << r;
      }
    }
  }
}

// A row's result does not depend on the call: alone, in a group, at any position, or through dot_rows and
// dot_rows_tokens.
TEST_P(VecDotByType, RowsAreIndependentOfTheCall) {
  const TensorType type = GetParam();
  const int64_t n = 1024, rows = 37;
  const Problem p(type, n, rows, 99);
  for (SimdLevel level : levels()) {
    const std::vector<float> all = p.run(level);
    for (int64_t first : {0, 1, 5}) {
      for (int64_t count : {1, 2, 3, 4, 8, 9, 17}) {
        if (first + count > rows) continue;
        std::vector<float> part(count);
        dot_rows_level(level, type, n, p.w.data() + first * p.stride, p.stride, count, p.act.data(), part.data());
        for (int64_t r = 0; r < count; ++r) {
          ASSERT_EQ(bits(part[r]), bits(all[first + r])) << type_name(type) << " " << simd_level_name(level);
        }
      }
    }
  }
  std::vector<float> dispatched(rows), scalar(rows);
  dot_rows(type, n, p.w.data(), p.stride, rows, p.act.data(), dispatched.data());
  const std::vector<float> at_level = p.run(simd_level());
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(bits(dispatched[r]), bits(at_level[r])) << r;
  dot_rows_scalar(type, n, p.w.data(), p.stride, rows, p.act.data(), scalar.data());
  const std::vector<float> scalar_level = p.run(SimdLevel::Scalar);
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(bits(scalar[r]), bits(scalar_level[r])) << r;
}

TEST_P(VecDotByType, TokensGiveTheSameBitsAsOneTokenAtATime) {
  const TensorType type = GetParam();
  const int64_t n = 512, rows = 19;
  const Problem p(type, n, rows, 5);
  const TensorType vt = vec_dot_type(type);
  const size_t act_bytes = row_bytes(vt, n);
  // Below, at and past the packed kernels' 8- and 16-token groups, in one call and through bands.
  for (int64_t n_tokens : {2, 4, 6, 8, 9, 16, 17, 40}) {
    std::vector<uint8_t> acts(act_bytes * n_tokens);
    std::mt19937 rng(3 + n_tokens);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> a(n);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (float& x : a) x = nd(rng);
      quantize_row(vt, a.data(), acts.data() + t * act_bytes, n);
    }
    const int64_t ldo = rows + 3;
    std::vector<float> out(ldo * n_tokens, NAN), banded(ldo * n_tokens, NAN), one(rows);
    dot_rows_tokens(type, n, p.w.data(), p.stride, rows, acts.data(), act_bytes, n_tokens, out.data(), ldo);
    TokenActivations prepared;
    prepared.set(type, n, acts.data(), act_bytes, n_tokens);
    // From 8 tokens on, a VNNI machine runs the packed kernels: they are what this compares.
    const bool quantized = type != TensorType::F32 && type != TensorType::F16 && type != TensorType::BF16;
    if (has_avx512_vnni() && quantized && n_tokens >= 8) {
      EXPECT_FALSE(prepared.packed().empty()) << type_name(type) << " tokens=" << n_tokens;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += 7) {
      dot_rows_tokens(type, n, p.w.data() + r0 * p.stride, p.stride, std::min<int64_t>(7, rows - r0), prepared,
                      banded.data() + r0, ldo);
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
      dot_rows(type, n, p.w.data(), p.stride, rows, acts.data() + t * act_bytes, one.data());
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(bits(out[t * ldo + r]), bits(one[r])) << type_name(type) << " tokens=" << n_tokens << " t=" << t;
        ASSERT_EQ(bits(banded[t * ldo + r]), bits(one[r])) << type_name(type) << " tokens=" << n_tokens << " t=" << t;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, VecDotByType, ::testing::ValuesIn(kWeightTypes),
                         [](const auto& info) { return std::string(type_name(info.param)); });

// Q8_0 in our block-exact order, written out: per block the exact integer sum of its 32 products, then
// acc = fma(d_w * d_a, sum, acc) from the first block. The values make the order matter: GGML's order (8
// lanes per block, then a tree) gives other bits here.
TEST(VecDot, Q8_0FollowsTheBlockExactOrder) {
  const int nb = 8;
  std::vector<BlockQ8_0> w(nb), a(nb);
  std::mt19937 rng(17);
  for (int b = 0; b < nb; ++b) {
    w[b].d = fp32_to_fp16(0.001f * (1 + b * 37 % 11));
    a[b].d = fp32_to_fp16(0.37f / (1 + b));
    for (int j = 0; j < 32; ++j) {
      w[b].qs[j] = (int8_t)((int)(rng() % 255) - 127);
      a[b].qs[j] = (int8_t)((int)(rng() % 255) - 127);
    }
  }
  float expected = 0.0f, lane[8] = {};
  for (int b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d);
    int sum = 0;
    for (int l = 0; l < 8; ++l) {
      int s = 0;
      for (int i = 4 * l; i < 4 * l + 4; ++i) s += w[b].qs[i] * a[b].qs[i];
      lane[l] = std::fma(d, (float)s, lane[l]);
      sum += s;
    }
    expected = std::fma(d, (float)sum, expected);
  }
  float q[4];
  for (int k = 0; k < 4; ++k) q[k] = lane[k + 4] + lane[k];
  const float ggml = (q[0] + q[2]) + (q[1] + q[3]);
  EXPECT_NE(bits(expected), bits(ggml)) << "the case no longer tells the two orders apart";
  for (SimdLevel level : levels()) {
    for (int64_t rows : {1, 8, 11}) {  // the one-row kernel, the 8-row kernel and both
      std::vector<float> out(rows);
      dot_rows_level(level, TensorType::Q8_0, 32 * nb, w.data(), 0, rows, a.data(), out.data());
      for (float o : out) EXPECT_EQ(bits(o), bits(expected)) << simd_level_name(level) << " rows=" << rows;
    }
  }
}

// Hand-computed Q4_K: one super-block whose integer sums are known, including the mins term.
TEST(VecDot, Q4_KHandComputed) {
  BlockQ4_K w;
  w.d = 0x3c00;     // 1
  w.dmin = 0x3800;  // 0.5
  // Scales 1..8 and mins 8..1, all below 16 (no high bits): bytes 0-3 scales 0-3, 4-7 mins 0-3, 8-11 the
  // low nibbles of scales 4-7 and (high nibbles) mins 4-7.
  int sc[8], mn[8];
  for (int j = 0; j < 8; ++j) sc[j] = j + 1, mn[j] = 8 - j;
  for (int j = 0; j < 4; ++j) {
    w.scales[j] = (uint8_t)sc[j];
    w.scales[j + 4] = (uint8_t)mn[j];
    w.scales[j + 8] = (uint8_t)(sc[j + 4] | (mn[j + 4] << 4));
  }
  for (int i = 0; i < 128; ++i) w.qs[i] = 0x21;  // low nibble 1, high nibble 2
  BlockQ8_K a;
  a.d = 0.25f;
  for (int i = 0; i < 256; ++i) a.qs[i] = (int8_t)(i % 3 - 1);
  for (int j = 0; j < 16; ++j) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += a.qs[16 * j + i];
    a.bsums[j] = (int16_t)s;
  }
  // Value v of sub-block j: q = 1 in the first 32 of each 64, 2 in the next 32.
  double expected = 0;
  for (int v = 0; v < 256; ++v) {
    const int j = v / 32, q = (v % 64) < 32 ? 1 : 2;
    expected += (1.0 * sc[j] * q - 0.5 * mn[j]) * 0.25 * a.qs[v];
  }
  for (SimdLevel level : levels()) {
    float out;
    dot_rows_level(level, TensorType::Q4_K, 256, &w, 0, 1, &a, &out);
    EXPECT_FLOAT_EQ(out, (float)expected) << simd_level_name(level);
  }
}

// ---- llama.cpp's own kernels ---------------------------------------------------------------------------

// The directory of node-llama-cpp's prebuilt x86-64 libraries, installed by `npm ci` in tests/reference.
std::string ggml_library_dir() {
  const std::string here = __FILE__;
  return here.substr(0, here.rfind("/unit/")) + "/reference/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/";
}

using GgmlDot = void (*)(int n, float* s, size_t bs, const void* x, size_t bx, const void* y, size_t by, int nrc);
using GgmlConvert = void (*)(const float* x, void* y, int64_t n);

// One of GGML's CPU backend variants, loaded with its exported kernels (names from ggml-cpu's sources).
struct GgmlVariant {
  bool ok = false;
  GgmlDot dot[32] = {};
  GgmlConvert q8_0 = nullptr, q8_k = nullptr, f16 = nullptr, bf16 = nullptr;
};

GgmlVariant load_ggml_variant(const char* name) {
  GgmlVariant v;
  const std::string dir = ggml_library_dir();
  if (!dlopen((dir + "libggml-base.so").c_str(), RTLD_NOW | RTLD_GLOBAL)) return v;
  void* h = dlopen((dir + name).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) return v;
  auto init = reinterpret_cast<void (*)()>(dlsym(h, "ggml_cpu_init"));
  if (!init) return v;
  init();
  const std::pair<TensorType, const char*> dots[] = {
      {TensorType::F32, "ggml_vec_dot_f32"},        {TensorType::F16, "ggml_vec_dot_f16"},
      {TensorType::BF16, "ggml_vec_dot_bf16"},      {TensorType::Q8_0, "ggml_vec_dot_q8_0_q8_0"},
      {TensorType::Q4_0, "ggml_vec_dot_q4_0_q8_0"}, {TensorType::Q4_K, "ggml_vec_dot_q4_K_q8_K"},
      {TensorType::Q5_K, "ggml_vec_dot_q5_K_q8_K"}, {TensorType::Q6_K, "ggml_vec_dot_q6_K_q8_K"}};
  for (const auto& [type, symbol] : dots) {
    v.dot[(int)type] = reinterpret_cast<GgmlDot>(dlsym(h, symbol));
    if (!v.dot[(int)type]) return v;
  }
  v.q8_0 = reinterpret_cast<GgmlConvert>(dlsym(h, "quantize_row_q8_0"));
  v.q8_k = reinterpret_cast<GgmlConvert>(dlsym(h, "quantize_row_q8_K"));
  v.f16 = reinterpret_cast<GgmlConvert>(dlsym(h, "ggml_cpu_fp32_to_fp16"));
  v.bf16 = reinterpret_cast<GgmlConvert>(dlsym(h, "ggml_cpu_fp32_to_bf16"));
  v.ok = v.q8_0 && v.q8_k && v.f16 && v.bf16;
  return v;
}

// GGML's "zen4" variant is built for AVX-512 F/CD/VL/DQ/BW, VBMI, VNNI and BF16; "haswell" for AVX2, FMA,
// F16C and BMI2. Our AVX-512 level reproduces the former, the AVX2 and scalar levels the latter.
bool cpu_runs_zen4_variant() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16") &&
         __builtin_cpu_supports("bmi2") && machine_simd_level() == SimdLevel::Avx512;
}

bool cpu_runs_haswell_variant() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("bmi2") && machine_simd_level() >= SimdLevel::Avx2;
}

// Sum over blocks of |d_w * d_a * (the block's integer sum)|: the scale of a Q8_0 dot's rounding errors.
double q8_0_term_magnitude(int64_t n, const uint8_t* w, const uint8_t* a) {
  const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(a);
  double mag = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int s = 0;
    for (int i = 0; i < 32; ++i) s += x[b].qs[i] * y[b].qs[i];
    mag += std::fabs((double)fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d) * s);
  }
  return mag;
}

void expect_matches_ggml(const GgmlVariant& g, const std::vector<SimdLevel>& ours, const char* variant) {
  std::mt19937_64 rng(2024);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (TensorType type : kWeightTypes) {
    const TensorType vt = vec_dot_type(type);
    for (int64_t n : {256, 2048, 5632, 64 * 9 + 43}) {
      if (n % type_traits(type)->block_elems) continue;
      const Problem p(type, n, 9, rng());
      // Our conversion of the activations is GGML's, byte for byte (Q8_0, Q8_K, F16, BF16).
      std::vector<float> a(n);
      for (float& x : a) x = 2.0f * nd(rng);
      std::vector<uint8_t> act(row_bytes(vt, n)), ref(row_bytes(vt, n));
      quantize_row(vt, a.data(), act.data(), n);
      const GgmlConvert convert = vt == TensorType::Q8_0   ? g.q8_0
                                  : vt == TensorType::Q8_K ? g.q8_k
                                  : vt == TensorType::F16  ? g.f16
                                  : vt == TensorType::BF16 ? g.bf16
                                                           : nullptr;
      if (convert) {
        convert(a.data(), ref.data(), n);
        EXPECT_EQ(0, std::memcmp(act.data(), ref.data(), act.size())) << variant << " " << type_name(vt) << " n=" << n;
      }
      for (SimdLevel level : ours) {
        std::vector<float> out(p.rows);
        dot_rows_level(level, type, n, p.w.data(), p.stride, p.rows, act.data(), out.data());
        for (int64_t r = 0; r < p.rows; ++r) {
          float want = NAN;
          g.dot[(int)type]((int)n, &want, 0, p.w.data() + r * p.stride, 0, act.data(), 0, 1);
          if (type == TensorType::Q8_0) {
            // The same exact block sums and scale products, added in another order: each of the
            // n / 32 + 8 additions of either order rounds by at most half an ulp of the sum of magnitudes.
            const double mag = q8_0_term_magnitude(n, p.w.data() + r * p.stride, act.data());
            ASSERT_NEAR(out[r], want, (n / 32 + 8) * std::ldexp(mag, -24))
                << variant << " vs " << simd_level_name(level) << " n=" << n << " r=" << r;
            continue;
          }
          ASSERT_EQ(bits(out[r]), bits(want))
              << variant << " vs " << simd_level_name(level) << " " << type_name(type) << " n=" << n << " r=" << r;
        }
      }
    }
  }
}

TEST(VecDotLlamaCpp, MatchesGgmlAvx512Build) {
  if (!cpu_runs_zen4_variant()) GTEST_SKIP() << "this CPU cannot run GGML's zen4 variant";
  const GgmlVariant g = load_ggml_variant("libggml-cpu-zen4.so");
  if (!g.ok) GTEST_SKIP() << "llama.cpp's CPU libraries not installed under " << ggml_library_dir();
  expect_matches_ggml(g, {SimdLevel::Avx512}, "ggml zen4");
}

TEST(VecDotLlamaCpp, MatchesGgmlAvx2Build) {
  if (!cpu_runs_haswell_variant()) GTEST_SKIP() << "this CPU cannot run GGML's haswell variant";
  const GgmlVariant g = load_ggml_variant("libggml-cpu-haswell.so");
  if (!g.ok) GTEST_SKIP() << "llama.cpp's CPU libraries not installed under " << ggml_library_dir();
  expect_matches_ggml(g, {SimdLevel::Scalar, SimdLevel::Avx2}, "ggml haswell");
}

}  // namespace
}  // namespace pginfer
