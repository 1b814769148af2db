// kernels/cuda/attention_tiled.cu: the tiled (flash-style) attention kernel. A block of four warps takes one query
// head of a tile of up to 64 tokens, each warp 16 of the queries. Per step of 64 keys: the keys and values are
// copied to shared memory (through the block table), each warp multiplies its queries by the keys (WMMA, F16 in,
// float out), two lanes per query row update the row's running maximum and sum and write the F16 weights, and
// each warp adds weights x values to its rows' float accumulators in shared memory, rescaled first to the new
// maximum.
#include <cuda_fp16.h>
#include <mma.h>

#include <atomic>

#include "kernels/cuda/attention_tiled.h"
#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

using namespace nvcuda;

constexpr int kQ = (int)kTileQueries, kK = (int)kTileKeys;
constexpr int kTileWarps = 4;  // each warp owns 16 of the tile's queries
constexpr int kTileThreads = kTileWarps * 32;
static_assert(kQ == 16 * kTileWarps, "one 16-row WMMA tile of queries per warp");
static_assert(kK % 32 == 0, "two lanes per row share a step's keys in halves");

// The shared memory of a block for heads of D values, in bytes from its start. Row strides are padded against
// bank conflicts; every fragment's address stays 32-byte aligned, as WMMA requires.
template <int D>
struct TileLayout {
  static constexpr int kLdh = D + 8;   // halves per row of the query, key and value tiles
  static constexpr int kLdp = kK + 8;  // halves per row of the softmax weights
  static constexpr int kLds = kK + 4;  // floats per row of the scores
  static constexpr int kLdo = D + 4;   // floats per row of the output accumulators
  static constexpr size_t kKeys = 0;
  static constexpr size_t kValues = kKeys + sizeof(__half) * kK * kLdh;
  static constexpr size_t kQueries = kValues + sizeof(__half) * kK * kLdh;
  static constexpr size_t kWeights = kQueries + sizeof(__half) * kQ * kLdh;
  static constexpr size_t kScores = kWeights + sizeof(__half) * kQ * kLdp;
  static constexpr size_t kOut = kScores + sizeof(float) * kQ * kLds;
  static constexpr size_t kRowMax = kOut + sizeof(float) * kQ * kLdo;
  static constexpr size_t kRowSum = kRowMax + sizeof(float) * kQ;
  static constexpr size_t kRowPos = kRowSum + sizeof(float) * kQ;
  static constexpr size_t kBytes = kRowPos + sizeof(int) * kQ;
  static_assert(kValues % 32 == 0 && kQueries % 32 == 0 && kWeights % 32 == 0 && kScores % 32 == 0 &&
                    kOut % 32 == 0 && (16 * kLdh * sizeof(__half)) % 32 == 0 && (16 * kLdo * sizeof(float)) % 32 == 0,
                "WMMA needs 32-byte aligned fragments");
};

template <int D>
__global__ void __launch_bounds__(kTileThreads)
    attention_tiled_kernel(const float* q, const __half* keys, const __half* values, KvSlots slots,
                           const int32_t* pos, const int32_t* tiles, int n_head, int n_head_kv, float scale,
                           float* out) {
  early_launch_sync();
  using L = TileLayout<D>;
  PGI_DYNAMIC_SHARED(smem);
  __half* ks = reinterpret_cast<__half*>(smem + L::kKeys);
  __half* vs = reinterpret_cast<__half*>(smem + L::kValues);
  __half* qs = reinterpret_cast<__half*>(smem + L::kQueries);
  __half* ps = reinterpret_cast<__half*>(smem + L::kWeights);
  float* ss = reinterpret_cast<float*>(smem + L::kScores);
  float* os = reinterpret_cast<float*>(smem + L::kOut);
  float* row_max = reinterpret_cast<float*>(smem + L::kRowMax);
  float* row_sum = reinterpret_cast<float*>(smem + L::kRowSum);
  int* row_pos = reinterpret_cast<int*>(smem + L::kRowPos);
  __shared__ int last_pos;

  const int h = blockIdx.x;
  const int64_t first = tiles[2 * blockIdx.y];
  const int count = tiles[2 * blockIdx.y + 1];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t kv_dim = (int64_t)n_head_kv * D;
  const int64_t kv_head = (int64_t)(h / (n_head / n_head_kv)) * D;
  const int32_t* table = table_of(slots, first);  // every token of a tile is of one sequence

  // The queries as F16 (zeros past the tile's tokens), their positions (-1 past them), empty accumulators.
  for (int i = tid; i < kQ * D; i += kTileThreads) {
    const int r = i / D, d = i % D;
    qs[r * L::kLdh + d] = __float2half_rn(r < count ? q[((first + r) * n_head + h) * D + d] : 0.0f);
    os[r * L::kLdo + d] = 0.0f;
  }
  if (tid == 0) last_pos = 0;
  if (tid < kQ) {
    row_pos[tid] = tid < count ? pos[first + tid] : -1;
    row_max[tid] = -INFINITY;
    row_sum[tid] = 0.0f;
  }
  __syncthreads();
  if (tid < count) atomicMax(&last_pos, row_pos[tid]);
  __syncthreads();
  const int64_t n_keys = (int64_t)last_pos + 1;

  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> qf[D / 16];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) wmma::load_matrix_sync(qf[kk], qs + warp * 16 * L::kLdh + kk * 16, L::kLdh);

  const int row = warp * 16 + lane / 2;  // the query row of this lane's share of the softmax
  const int side = lane % 2;             // which half of the step's keys, and of the row's output, it takes
  const int limit = row_pos[row];        // the row's last key (-1: a row past the tile's tokens, no key)
  for (int64_t k0 = 0; k0 < n_keys; k0 += kK) {
    __syncthreads();  // every warp is done with the previous step's keys and values
    // Keys and values k0 .. k0 + kK - 1, 16 bytes per thread and copy; zeros past the tile's last position.
    constexpr int kVecs = D / 8;
    for (int i = tid; i < kK * kVecs; i += kTileThreads) {
      const int r = i / kVecs, c = (i % kVecs) * 8;
      const int64_t j = k0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (j < n_keys) {
        const int64_t at = slot_of(table, slots.block_shift, j) * kv_dim + kv_head + c;
        kv = *reinterpret_cast<const uint4*>(keys + at);
        vv = *reinterpret_cast<const uint4*>(values + at);
      }
      *reinterpret_cast<uint4*>(ks + r * L::kLdh + c) = kv;
      *reinterpret_cast<uint4*>(vs + r * L::kLdh + c) = vv;
    }
    __syncthreads();
    // Scores of the warp's 16 queries against the step's keys.
#pragma unroll
    for (int n = 0; n < kK / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> kf;  // keys^T: column n*16+i is key i
        wmma::load_matrix_sync(kf, ks + n * 16 * L::kLdh + kk * 16, L::kLdh);
        wmma::mma_sync(acc, qf[kk], kf, acc);
      }
      wmma::store_matrix_sync(ss + warp * 16 * L::kLds + n * 16, acc, L::kLds, wmma::mem_row_major);
    }
    __syncwarp();
    // The online softmax of the row's share: keys past the row's position are masked.
    const float* srow = ss + row * L::kLds + side * (kK / 2);
    float sc[kK / 2];
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < kK / 2; ++c) {
      const int64_t j = k0 + side * (kK / 2) + c;
      sc[c] = j <= limit ? srow[c] * scale : -INFINITY;
      mx = fmaxf(mx, sc[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_old = row_max[row];
    const float m_new = fmaxf(m_old, mx);
    const float corr = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);  // no key yet: nothing to rescale
    float sum = 0.0f;
    __half* prow = ps + row * L::kLdp + side * (kK / 2);
#pragma unroll
    for (int c = 0; c < kK / 2; ++c) {
      const float p = sc[c] == -INFINITY ? 0.0f : expf(sc[c] - m_new);
      sum += p;
      prow[c] = __float2half_rn(p);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    float* orow = os + row * L::kLdo + side * (D / 2);
#pragma unroll 8
    for (int d = 0; d < D / 2; ++d) orow[d] *= corr;
    __syncwarp();  // both lanes of the row have read row_max
    if (side == 0) {
      row_max[row] = m_new;
      row_sum[row] = row_sum[row] * corr + sum;
    }
    __syncwarp();
    // The rows' outputs += weights x values.
#pragma unroll
    for (int nd = 0; nd < D / 16; ++nd) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, os + warp * 16 * L::kLdo + nd * 16, L::kLdo, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kK / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pf;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vf;
        wmma::load_matrix_sync(pf, ps + warp * 16 * L::kLdp + kk * 16, L::kLdp);
        wmma::load_matrix_sync(vf, vs + kk * 16 * L::kLdh + nd * 16, L::kLdh);
        wmma::mma_sync(acc, pf, vf, acc);
      }
      wmma::store_matrix_sync(os + warp * 16 * L::kLdo + nd * 16, acc, L::kLdo, wmma::mem_row_major);
    }
  }
  __syncwarp();
  // Each lane writes its half of its row, normalised.
  if (row < count) {
    const float inv = 1.0f / row_sum[row];
    const float* orow = os + row * L::kLdo + side * (D / 2);
    float* o = out + ((first + row) * n_head + h) * D + side * (D / 2);
    for (int d = 0; d < D / 2; ++d) o[d] = orow[d] * inv;
  }
}

template <int D>
void launch(const float* q, const uint16_t* keys, const uint16_t* values, const KvSlots& slots, const int32_t* pos,
            const int32_t* tiles, int64_t n_tiles, int64_t n_head, int64_t n_head_kv, float scale, float* out,
            cudaStream_t stream) {
  using L = TileLayout<D>;
  // Dynamic shared memory beyond 48 KiB has to be allowed, once per kernel and device (a failure shows as the
  // launch's error).
  static std::atomic<uint64_t> allowed_on{0};  // bit d: allowed on device d
  int device = 0;
  cudaGetDevice(&device);
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if ((allowed_on.load() & bit) == 0 &&
      cudaFuncSetAttribute(attention_tiled_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::kBytes) ==
          cudaSuccess) {
    allowed_on.fetch_or(bit);
  }
  const dim3 grid((unsigned)n_head, (unsigned)n_tiles);
  launch_kernel(attention_tiled_kernel<D>, grid, kTileThreads, L::kBytes, stream,
      q, reinterpret_cast<const __half*>(keys), reinterpret_cast<const __half*>(values), slots, pos, tiles,
      (int)n_head, (int)n_head_kv, scale, out);
}

}  // namespace

void attention_tiled(const float* q, const uint16_t* keys, const uint16_t* values, const KvSlots& slots,
                     const int32_t* pos, const int32_t* tiles, int64_t n_tiles, int64_t n_head, int64_t n_head_kv,
                     int64_t head_dim, float scale, float* out, cudaStream_t stream) {
  if (n_tiles <= 0) return;
  if (head_dim == 64) {
    launch<64>(q, keys, values, slots, pos, tiles, n_tiles, n_head, n_head_kv, scale, out, stream);
  } else if (head_dim == 128) {
    launch<128>(q, keys, values, slots, pos, tiles, n_tiles, n_head, n_head_kv, scale, out, stream);
  }
}

}  // namespace pginfer::cuda
