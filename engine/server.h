// engine/server.h: the engine process's request handling: the registry of loaded models and one handler
// per connection (load, unload, list, generate, chat, tokenize, detokenize, stats), speaking
// engine/protocol.h. The socket setup and the process itself live in tools/pg_infer_engine.
//
// Each model's generations run in its batching loop (engine/batcher.h): one forward pass for every running
// sequence; requests wait in a queue of bounded length, and a request whose client has gone away or whose
// time is up stops before its next pass. Each sequence holds a contiguous KV cache for its prompt and new
// tokens, taken from a budget shared by all models (ServerOptions::kv_cache_bytes) and from the model's own
// (load option kv_cache_size); a request that does not fit fails with OutOfMemory. Statistics count that memory in blocks of kKvBlockPositions positions.
//
// For tests only: the environment variable PG_INFER_TEST_SLOW_LOAD=NAME:MS makes loads of the model
// called NAME take MS milliseconds longer, so that the "still loading" state can be observed.
#pragma once

#include <atomic>
#include <cstdint>
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
  int64_t kv_cache_bytes = 1ll << 30;  // KV cache of all running requests together at most
};

// Positions per KV block in the statistics (the unit of the paged cache to come).
constexpr int64_t kKvBlockPositions = 16;

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
  // The KV cache of a request's sequences, held against the engine's and the model's budgets for as
  // long as it lives.
  class KvReservation {
   public:
    KvReservation(Server& server, LoadedModel& model, int64_t positions);
    ~KvReservation();
    // OutOfMemory when a budget is exceeded (then nothing is held).
    const Status& status() const { return status_; }

   private:
    Server& server_;
    LoadedModel& model_;
    int64_t positions_;
    int64_t bytes_;
    Status status_;
  };
  // The ready model called `name`; NotFound or NotReady otherwise.
  Status find_model(const std::string& name, std::shared_ptr<LoadedModel>* out);

  ServerOptions options_;
  std::atomic<int64_t> kv_bytes_in_use_{0};  // KV caches of running requests
  std::mutex registry_mutex_;
  std::map<std::string, std::shared_ptr<LoadedModel>> models_;
};

}  // namespace pginfer
