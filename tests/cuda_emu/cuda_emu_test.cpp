// tests/cuda_emu/cuda_emu_test.cpp: the emulated device (cuda_emu.h) runs kernels as the hardware would, and fails
// them where the hardware would: the checks that make the GPU suites' emulated runs worth something.
#include <gtest/gtest.h>
#include <mma.h>

#include <numeric>
#include <vector>

#include "cuda_runtime_api.h"
#include "kernels/cuda/launch.cuh"

namespace {

// Every device failure sticks for the rest of the process, so each test that fails the device runs in a child.
#define EXPECT_DEVICE_FAILS(statement, error)                                      \
  GTEST_FLAG_SET(death_test_style, "threadsafe");                                  \
  EXPECT_EXIT(                                                                     \
      {                                                                            \
        statement;                                                                 \
        std::exit(cudaStreamSynchronize(nullptr) == (error) ? 0 : 1);              \
      },                                                                           \
      ::testing::ExitedWithCode(0), "")

// out[block * 32 + lane] = the sum over the warp of lane + 1, by butterfly shuffles.
__global__ void warp_sums(float* out) {
  pginfer::cuda::early_launch_sync();
  const float v = (float)(threadIdx.x % 32 + 1);
  out[blockIdx.x * blockDim.x + threadIdx.x] = pginfer::cuda::warp_sum(v);
}

// Lanes 0..7 exchange among themselves (mask 0xff) while the other lanes are already at a full-warp shuffle, as
// the K-quant products do: out[lane] = max over lanes 0..7 of their lane number (for those lanes) + the warp's sum.
__global__ void group_then_warp(float* out) {
  const int lane = threadIdx.x % 32;
  float group_max = 0.0f;
  if (lane < 8) {
    group_max = (float)lane;
    for (int o = 1; o < 8; o <<= 1) group_max = fmaxf(group_max, __shfl_xor_sync(0xffu, group_max, o));
  }
  out[lane] = group_max + pginfer::cuda::warp_sum(1.0f);
}

// Lane 0 leaves before the others shuffle with it.
__global__ void shuffle_with_an_exited_lane(float* out) {
  if (threadIdx.x == 0) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// Lane 0 of each warp waits at __syncthreads, the other lanes at a shuffle that names lane 0: neither comes.
__global__ void divergent_barriers(float* out) {
  if (threadIdx.x % 32 == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  }
}

// Thread t writes shared[t], and after the barrier reads its neighbour's: wrong without the barrier.
__global__ void shared_after_barrier(float* out) {
  PGI_DYNAMIC_SHARED(smem);
  float* s = reinterpret_cast<float*>(smem);
  s[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// A float4 read at a 4-byte offset.
__global__ void misaligned_load(const float* in, float* out) {
  const float4 v = __ldg(reinterpret_cast<const float4*>(in + 1));
  out[0] = v.x;
}

// D = A B + 0 on one 16 x 16 x 16 tile; A and B F16 in row-major layout.
__global__ void wmma_tile(const __half* a, const __half* b, float* d) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(d, acc, 16, wmma::mem_row_major);
}

float* device_floats(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(float)), cudaSuccess);
  return static_cast<float*>(p);
}

std::vector<float> host_floats(const float* d, size_t n) {
  std::vector<float> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

TEST(CudaEmulation, ShufflesSumAWarp) {
  float* out = device_floats(2 * 64);
  pginfer::cuda::launch_kernel(warp_sums, dim3(2), dim3(64), 0, nullptr, out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (float v : host_floats(out, 128)) EXPECT_EQ(v, 528.0f);  // 1 + ... + 32
}

TEST(CudaEmulation, AGroupOfLanesShufflesWhileTheOthersWaitAtAWarpShuffle) {
  float* out = device_floats(32);
  pginfer::cuda::launch_kernel(group_then_warp, dim3(1), dim3(32), 0, nullptr, out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> got = host_floats(out, 32);
  for (int lane = 0; lane < 32; ++lane) EXPECT_EQ(got[lane], (lane < 8 ? 7.0f : 0.0f) + 32.0f) << lane;
}

TEST(CudaEmulation, SharedMemoryNeedsTheBarrierAndNaNsWhatNothingWrote) {
  float* out = device_floats(64);
  pginfer::cuda::launch_kernel(shared_after_barrier, dim3(1), dim3(64), 64 * sizeof(float), nullptr, out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> got = host_floats(out, 64);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(got[t], (float)((t + 1) % 64));
  // New device memory reads as NaN until written.
  EXPECT_TRUE(std::isnan(host_floats(device_floats(4), 4)[2]));
}

TEST(CudaEmulation, WmmaMultipliesATile) {
  std::vector<uint16_t> a(256), b(256);
  for (int i = 0; i < 256; ++i) {
    a[i] = pginfer::fp32_to_fp16((float)(i % 7) - 3.0f);
    b[i] = pginfer::fp32_to_fp16((float)(i % 5) * 0.5f);
  }
  void *da = nullptr, *db = nullptr;
  ASSERT_EQ(cudaMalloc(&da, 512), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&db, 512), cudaSuccess);
  cudaMemcpy(da, a.data(), 512, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), 512, cudaMemcpyHostToDevice);
  float* d = device_floats(256);
  pginfer::cuda::launch_kernel(wmma_tile, dim3(1), dim3(32), 0, nullptr, static_cast<const __half*>(da),
                               static_cast<const __half*>(db), d);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> got = host_floats(d, 256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      float want = 0.0f;
      for (int l = 0; l < 16; ++l) {
        want += pginfer::fp16_to_fp32(a[i * 16 + l]) * pginfer::fp16_to_fp32(b[l * 16 + j]);
      }
      EXPECT_EQ(got[i * 16 + j], want) << i << "," << j;
    }
  }
}

TEST(CudaEmulation, LargeSharedMemoryNeedsTheAttribute) {
  float* out = device_floats(64);
  pginfer::cuda::launch_kernel(shared_after_barrier, dim3(1), dim3(64), 64 << 10, nullptr, out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  ASSERT_EQ(cudaFuncSetAttribute(shared_after_barrier, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10),
            cudaSuccess);
  pginfer::cuda::launch_kernel(shared_after_barrier, dim3(1), dim3(64), 64 << 10, nullptr, out);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaEmulation, BadLaunchShapesAreRefused) {
  float* out = device_floats(1);
  pginfer::cuda::launch_kernel(warp_sums, dim3(0), dim3(32), 0, nullptr, out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  pginfer::cuda::launch_kernel(warp_sums, dim3(1), dim3(2048), 0, nullptr, out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // not sticky
}

TEST(CudaEmulation, ACaptureRecordsWorkAndForbidsSynchronousCalls) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  float* out = device_floats(64);
  void* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, 64 * sizeof(float)), cudaSuccess);
  float* host = static_cast<float*>(pinned);
  std::iota(host, host + 64, 0.0f);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(out, host, 64 * sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  EXPECT_TRUE(std::isnan(host_floats(out, 64)[5])) << "a captured copy runs only when the graph is launched";
  host[5] = 42.0f;  // a replay reads the host memory as it is then
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  EXPECT_EQ(host_floats(out, 64)[5], 42.0f);
  // An allocation inside a capture fails and spoils the capture.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  cudaGraph_t spoiled = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &spoiled), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(spoiled, nullptr);
  cudaGetLastError();
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

TEST(CudaEmulationDeathTest, AShuffleWithAnExitedLaneFailsTheLaunch) {
  EXPECT_DEVICE_FAILS(pginfer::cuda::launch_kernel(shuffle_with_an_exited_lane, dim3(1), dim3(32), 0, nullptr,
                                                   device_floats(32)),
                      cudaErrorLaunchFailure);
}

TEST(CudaEmulationDeathTest, BarriersSomeThreadsNeverReachFailTheLaunch) {
  EXPECT_DEVICE_FAILS(pginfer::cuda::launch_kernel(divergent_barriers, dim3(1), dim3(64), 0, nullptr,
                                                   device_floats(64)),
                      cudaErrorLaunchFailure);
}

TEST(CudaEmulationDeathTest, AMisalignedVectorLoadFailsTheLaunch) {
  EXPECT_DEVICE_FAILS(pginfer::cuda::launch_kernel(misaligned_load, dim3(1), dim3(1), 0, nullptr,
                                                   static_cast<const float*>(device_floats(8)), device_floats(1)),
                      cudaErrorMisalignedAddress);
}

}  // namespace
