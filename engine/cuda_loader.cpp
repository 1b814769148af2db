// engine/cuda_loader.cpp: finds and dlopens the CUDA backend module (see cuda_backend.h), once per process.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "engine/cuda_backend.h"

namespace pginfer {

namespace {

// The module's exported functions (engine/cuda_backend.cpp defines them).
using AbiFn = int (*)();
using DeviceCountFn = int (*)(char* why, size_t why_len);
using CreateFn = int (*)(int device, unsigned flags, Backend** out, char* why, size_t why_len);

struct CudaModule {
  void* handle = nullptr;
  DeviceCountFn device_count = nullptr;
  CreateFn create = nullptr;
  std::string error;  // why handle is null
};

std::vector<std::string> candidate_paths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("PG_INFER_CUDA_MODULE"); env != nullptr && *env) paths.push_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path() / "libpginfer_cuda.so").string());
    paths.push_back((exe.parent_path().parent_path() / "lib" / "libpginfer_cuda.so").string());
  }
#ifdef PG_INFER_CUDA_MODULE_PATH
  paths.push_back(PG_INFER_CUDA_MODULE_PATH);
#endif
  return paths;
}

CudaModule load_module() {
  CudaModule m;
  std::string tried;
  for (const std::string& path : candidate_paths()) {
    if (access(path.c_str(), F_OK) != 0) continue;
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      tried += (tried.empty() ? "" : "; ") + std::string(e ? e : path.c_str());
      continue;
    }
    auto abi = reinterpret_cast<AbiFn>(dlsym(h, "pginfer_cuda_module_abi"));
    auto count = reinterpret_cast<DeviceCountFn>(dlsym(h, "pginfer_cuda_device_count"));
    auto create = reinterpret_cast<CreateFn>(dlsym(h, "pginfer_cuda_create_backend"));
    if (abi == nullptr || count == nullptr || create == nullptr) {
      tried += (tried.empty() ? "" : "; ") + path + " is not a pg_infer CUDA module";
      dlclose(h);
      continue;
    }
    if (abi() != kCudaModuleAbi) {
      tried += (tried.empty() ? "" : "; ") + path + " was built for another engine version";
      dlclose(h);
      continue;
    }
    // Kept loaded for the life of the process: backends it created run its code.
    m.handle = h;
    m.device_count = count;
    m.create = create;
    return m;
  }
  m.error = tried.empty() ? "this build has no CUDA backend module (libpginfer_cuda.so not found)"
                          : "cannot load the CUDA backend module: " + tried;
  return m;
}

const CudaModule& module() {
  static std::once_flag once;
  static CudaModule m;
  std::call_once(once, [] { m = load_module(); });
  return m;
}

}  // namespace

int cuda_device_count(std::string* why) {
  const CudaModule& m = module();
  if (m.handle == nullptr) {
    if (why) *why = m.error;
    return 0;
  }
  char buf[512] = {0};
  const int n = m.device_count(buf, sizeof buf);
  if (n <= 0 && why) *why = buf;
  return n > 0 ? n : 0;
}

Status make_cuda_backend(const CudaBackendOptions& options, std::unique_ptr<Backend>* out) {
  const CudaModule& m = module();
  if (m.handle == nullptr) return unsupported(m.error);
  char buf[512] = {0};
  Backend* b = nullptr;
  const unsigned flags = (options.graphs ? 0u : kCudaNoGraphs) |
                         (options.f16_weight_copies ? 0u : kCudaNoF16WeightCopies) |
                         (options.early_launch ? kCudaEarlyLaunch : 0u);
  const int code = m.create(options.device, flags, &b, buf, sizeof buf);
  if (code != 0 || b == nullptr) return Status(static_cast<StatusCode>(code ? code : (int)StatusCode::Internal), buf);
  out->reset(b);
  return Status::ok_status();
}

}  // namespace pginfer
