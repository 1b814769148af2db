// engine/server.h: the engine process's request handling: the registry of loaded models and one handler
// per connection (load, unload, list, generate, chat, tokenize, detokenize, stats), speaking
// engine/protocol.h. The socket setup and the process itself live in tools/pg_infer_engine.
//
// Each model's generations run in its batching loop (engine/batcher.h): one forward pass for every running
// sequence over a paged KV pool with a prefix cache shared by all requests; requests wait in a queue of
// bounded length, and a request whose client has gone away or whose time is up stops before its next
// pass. A model runs on the device its load option says (cpu; cuda, the GPU or an error; auto, the GPU
// when one is present and can hold it, else the CPU). Its pool holds its load option kv_cache_size, else on
// the CPU ServerOptions::kv_cache_bytes and on a GPU the load option gpu_memory_fraction (default 0.9) of the
// device memory left free by the weights and working buffers, at most what the batcher's running sequences
// need at full context (server.cpp, kv_pool_blocks); a request longer than the whole pool fails with
// OutOfMemory, and when the pool is full the newest sequence waits and is recomputed. Statistics count that
// memory in blocks of Batcher::Options::block_size positions.
//
// For tests only: the environment variable PG_INFER_TEST_SLOW_LOAD=NAME:MS makes loads of the model
// called NAME take MS milliseconds longer, so that the "still loading" state can be observed; and
// PG_INFER_TEST_DEVICE_LOST=NAME makes every pass of the model called NAME fail as after a GPU error.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/generate.h"
#include "engine/status.h"
#include "engine/wire.h"

namespace pginfer {

// What the engine was started with.
struct ServerOptions {
  std::string model_dir;          // only files under this folder (after resolving links) can be loaded
  int threads = 0;                // CPU threads per model when the load options do not say (0: all cores)
  int64_t max_queue = 64;         // requests waiting for one model at most
  double request_timeout_s = 0;   // a request running longer fails (0: no limit)
  int64_t kv_cache_bytes = 1ll << 30;  // KV pool of a CPU model whose load options do not size it
  // Called (on a model's batching thread) when the model's device failed beyond repair (DeviceLost); its
  // requests in flight have failed with that error. The engine program ends its process, so that the
  // supervisor starts a new one and the registry loads the models again. Unset: the model keeps failing.
  std::function<void(const std::string& model, const Status& why)> on_device_lost;
};

struct LoadedModel;  // a model in the registry (server.cpp)

// The engine's state and request handlers; one instance per process, shared by connection threads.
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Serves requests on connected socket `fd` until the peer closes it (the caller closes `fd`).
  void serve_connection(int fd);

 private:
  // Each handler answers one request on `fd`; a failed Status becomes an ERROR reply.
  Status handle_load(const wire::Fields& f, int fd);
  Status handle_unload(const wire::Fields& f, int fd);
  Status handle_models(int fd);
  Status handle_generate(const wire::Fields& f, bool chat, int fd);
  Status handle_tokenize(const wire::Fields& f, int fd);
  Status handle_detokenize(const wire::Fields& f, int fd);
  Status handle_stats(int fd);
  // The ready model called `name`; NotFound or NotReady otherwise.
  Status find_model(const std::string& name, std::shared_ptr<LoadedModel>* out);

  ServerOptions options_;
  std::mutex registry_mutex_;
  std::map<std::string, std::shared_ptr<LoadedModel>> models_;
};

}  // namespace pginfer
