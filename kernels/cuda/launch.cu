// kernels/cuda/launch.cu: which streams launch kernels early (launch.cuh).
#include <algorithm>
#include <mutex>
#include <vector>

#include "kernels/cuda/launch.cuh"

namespace pginfer::cuda {

namespace {

std::mutex early_mutex;
std::vector<cudaStream_t> early_streams;  // few: one per backend that asked

}  // namespace

void set_early_launch(cudaStream_t stream, bool on) {
  std::lock_guard<std::mutex> lock(early_mutex);
  auto it = std::find(early_streams.begin(), early_streams.end(), stream);
  if (on && it == early_streams.end()) early_streams.push_back(stream);
  if (!on && it != early_streams.end()) early_streams.erase(it);
}

bool early_launch(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(early_mutex);
  return std::find(early_streams.begin(), early_streams.end(), stream) != early_streams.end();
}

}  // namespace pginfer::cuda
