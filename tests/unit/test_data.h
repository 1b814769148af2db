// tests/unit/test_data.h: deterministic test inputs shared by the kernel tests.
#pragma once

#include <cstdint>
#include <vector>

namespace pginfer::testing {

// n values uniform in [-scale, scale] from a fixed LCG, the same on every machine.
inline std::vector<float> random_row(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = scale * ((float)((seed >> 33) % 20001) / 10000.0f - 1.0f);
  }
  return v;
}

}  // namespace pginfer::testing
