// engine/server.cpp: the registry of models and the request handlers of the engine process.
#include "engine/server.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "engine/backend.h"
#include "engine/batcher.h"
#include "engine/chat_prompt.h"
#include "engine/cuda_backend.h"
#include "engine/executor.h"
#include "engine/generate.h"
#include "engine/json.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/utf8.h"
#include "engine/vocab.h"

namespace pginfer {

// A model in the registry: its weights, vocabulary and backend once ready, and its counters.
struct LoadedModel {
  std::string name;
  std::string path;                   // as resolved (no links, no "..")
  std::atomic<bool> ready{false};     // false while loading
  std::unique_ptr<Model> model;
  std::unique_ptr<Vocab> vocab;
  std::unique_ptr<Backend> backend;
  int64_t n_ctx = 0;                  // context of one request
  std::string device = "cpu";
  std::string fallback_reason;        // device auto on the CPU although a GPU is present: why ("" otherwise)
  int64_t memory_bytes = 0;           // the file's size (mapped) on the CPU; weights + KV pool on a GPU
  std::unique_ptr<Batcher> batcher;      // runs every generation of the model (declared last-destroyed-first)
  // Bytes of KV cache per position (keys and values, F16, every layer).
  int64_t kv_bytes_per_position() const {
    const ModelConfig& c = model->config();
    return c.n_layer * c.n_head_kv * c.head_dim * 2 * 2;
  }
};

namespace {

using Clock = std::chrono::steady_clock;

// Whether the client on `fd` has closed its end (or sent something unexpected mid-request).
bool peer_gone(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

Status reply_ok(int fd, const wire::FrameWriter& w) { return wire::write_all(fd, w.frame()); }

// `path` resolved (links and ".." removed), or an error naming it.
Status resolve(const std::string& path, std::string* out) {
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return not_found("model file \"" + path + "\" does not exist or cannot be reached");
  *out = resolved;
  std::free(resolved);
  return Status::ok_status();
}

// The load options of a JSON object: context_length, threads, device, kv_cache_size, gpu_memory_fraction.
struct LoadOptions {
  int64_t context_length = 0;  // 0: the model's, at most 4096
  int64_t threads = 0;
  std::string device = "auto";
  int64_t kv_cache_mb = 0;     // this model's running requests together at most (0: sized by kv_pool_blocks)
  double gpu_memory_fraction = 0.9;  // on a GPU without kv_cache_mb: the share of free memory the pool may take
};

Status parse_load_options(const std::string& text, LoadOptions* out) {
  if (text.empty()) return Status::ok_status();
  JsonValue v;
  PGI_RETURN_IF_ERROR(parse_json(text, &v));
  if (v.type != JsonType::Object) return invalid_argument("model options must be a JSON object");
  for (const auto& [key, value] : v.object) {
    auto integer = [&](int64_t lo, int64_t hi, int64_t* slot) -> Status {
      if (value.type != JsonType::Number || value.number != (double)(int64_t)value.number || value.number < lo ||
          value.number > hi) {
        return invalid_argument("model option \"" + key + "\" must be an integer from " + std::to_string(lo) +
                                " to " + std::to_string(hi));
      }
      *slot = (int64_t)value.number;
      return Status::ok_status();
    };
    if (key == "context_length") {
      PGI_RETURN_IF_ERROR(integer(1, 1 << 24, &out->context_length));
    } else if (key == "threads") {
      PGI_RETURN_IF_ERROR(integer(0, 1024, &out->threads));
    } else if (key == "kv_cache_size") {
      PGI_RETURN_IF_ERROR(integer(1, 1 << 30, &out->kv_cache_mb));
    } else if (key == "gpu_memory_fraction") {
      if (value.type != JsonType::Number || !(value.number > 0.0 && value.number <= 1.0)) {
        return invalid_argument("model option \"gpu_memory_fraction\" must be a number greater than 0 and at most 1");
      }
      out->gpu_memory_fraction = value.number;
    } else if (key == "device") {
      if (value.type != JsonType::String || (value.string != "auto" && value.string != "cpu" && value.string != "cuda")) {
        return invalid_argument("model option \"device\" must be \"auto\", \"cpu\" or \"cuda\"");
      }
      out->device = value.string;
    } else {
      return invalid_argument("unknown model option \"" + key +
                              "\" (known: context_length, threads, device, kv_cache_size, gpu_memory_fraction)");
    }
  }
  return Status::ok_status();
}

// PG_INFER_TEST_SLOW_LOAD=NAME:MS (tests only): loads of model NAME take MS milliseconds longer.
void test_slow_load(const std::string& name) {
  const char* env = std::getenv("PG_INFER_TEST_SLOW_LOAD");
  if (env == nullptr) return;
  const std::string spec = env;
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || spec.substr(0, colon) != name) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(spec.c_str() + colon + 1)));
}

// PG_INFER_TEST_DEVICE_LOST=NAME (tests only): every pass of model NAME fails as after a GPU error.
bool test_device_lost(const std::string& name) {
  const char* env = std::getenv("PG_INFER_TEST_DEVICE_LOST");
  return env != nullptr && name == env;
}

// What the user can do about a failed request (the HINT of the SQL error), or "".
std::string hint_for(const Status& st, uint8_t request) {
  switch (st.code()) {
    case StatusCode::NotFound:
      return request == PGI_MSG_LOAD ? "" : "Load it with llm_load_model(name, path).";
    case StatusCode::NotReady: return "Retry once llm_load_model() has returned.";
    case StatusCode::Busy: return "Retry later, or raise pg_infer.max_queue.";
    case StatusCode::OutOfMemory:
      return request == PGI_MSG_LOAD ? "Give the model a smaller context_length or kv_cache_size, or load it "
                                       "with {\"device\": \"cpu\"}."
                                     : "Ask for fewer tokens, or raise pg_infer.kv_cache_size.";
    case StatusCode::Timeout: return "Ask for fewer tokens, or raise pg_infer.request_timeout.";
    case StatusCode::DeviceLost: return "The pg_infer engine restarts and loads its models again; retry.";
    case StatusCode::PermissionDenied: return "Put the model file under pg_infer.model_dir.";
    default: return "";
  }
}

// Device memory a model's passes need besides its weights and KV pool, for passes of up to `max_tokens`
// tokens: the executor's activations; the CUDA backend's product scratch (the largest weight matrix
// dequantized to F16, activations rounded to floats and converted to halves); attention's split partials
// (kernels/cuda/attention.h: fewer than 1024 query heads x 64 ranges x (head_dim + 2) floats); and a margin
// for cuBLAS's workspace and the CUDA context's own allocations.
int64_t gpu_working_bytes(const Model& model, int64_t max_tokens) {
  const ModelConfig& c = model.config();
  int64_t largest = 0, widest = 0;
  for (const GgufTensor& t : model.file().tensors()) {
    if (t.n_dims != 2) continue;
    largest = std::max(largest, t.ne[0] * t.ne[1]);
    widest = std::max(widest, t.ne[0]);
  }
  const int64_t activations = Executor::activation_floats(c, max_tokens) * 4;
  const int64_t product_scratch = largest * 2 + max_tokens * widest * (4 + 2);
  const int64_t attention_partials = int64_t{1024} * 64 * (c.head_dim + 2) * 4;
  return activations + product_scratch + attention_partials + (int64_t{256} << 20);
}

// Blocks of the KV pool of `entry` (backend prepared, n_ctx set) for a batcher with options `b`:
// - the load option kv_cache_size when given, else on the CPU the engine's budget (pg_infer.kv_cache_size);
// - on a GPU without kv_cache_size: gpu_memory_fraction of the device memory free now (the weights are
//   uploaded) less gpu_working_bytes, but no more than b.max_running sequences of the full context need
//   (a small model does not take the whole device), and OutOfMemory when that leaves less than one sequence
//   of the full context.
Status kv_pool_blocks(const LoadOptions& opts, int64_t engine_budget, const LoadedModel& entry,
                      const Batcher::Options& b, int64_t* out) {
  const int64_t block_bytes = b.block_size * entry.kv_bytes_per_position();
  const int64_t free_bytes = entry.backend->free_device_memory();
  if (opts.kv_cache_mb > 0 || free_bytes < 0) {
    const int64_t budget = opts.kv_cache_mb > 0 ? opts.kv_cache_mb << 20 : engine_budget;
    *out = std::clamp<int64_t>(budget / block_bytes, 1, INT32_MAX);
    return Status::ok_status();
  }
  const int64_t context_blocks = (entry.n_ctx + b.block_size - 1) / b.block_size;
  const int64_t working = gpu_working_bytes(*entry.model, b.max_tokens);
  const int64_t usable = std::max<int64_t>(0, free_bytes - working);
  const int64_t blocks = std::min<int64_t>((int64_t)(opts.gpu_memory_fraction * (double)usable) / block_bytes,
                                           b.max_running * context_blocks);
  if (blocks < context_blocks) {
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, "%g", opts.gpu_memory_fraction);
    return out_of_memory("the GPU has " + std::to_string(free_bytes >> 20) + " MiB free after the weights, too " +
                         "little for " + std::to_string(working >> 20) + " MiB of working memory and, at " +
                         "gpu_memory_fraction " + fraction + ", a KV cache of " + std::to_string(entry.n_ctx) +
                         " positions (" + std::to_string((context_blocks * block_bytes) >> 20) + " MiB)");
  }
  *out = std::min<int64_t>(blocks, INT32_MAX);
  return Status::ok_status();
}

// Sizes the KV pool of `entry` (backend prepared) and starts its batching loop.
Status start_batcher(const LoadOptions& opts, const ServerOptions& server, LoadedModel& entry) {
  Batcher::Options b;
  b.max_queue = server.max_queue;
  b.model_key = std::hash<std::string>{}(entry.path);
  b.simulate_device_lost = test_device_lost(entry.name);
  if (server.on_device_lost) {
    b.on_device_lost = [callback = server.on_device_lost, name = entry.name](const Status& st) { callback(name, st); };
  }
  PGI_RETURN_IF_ERROR(kv_pool_blocks(opts, server.kv_cache_bytes, entry, b, &b.kv_blocks));
  PGI_RETURN_IF_ERROR(Batcher::create(*entry.model, *entry.backend, b, &entry.batcher));
  entry.memory_bytes = (int64_t)entry.model->file().file_size();
  if (entry.device != "cpu") {
    int64_t weights = 0;
    for (const GgufTensor& t : entry.model->file().tensors()) weights += (int64_t)t.n_bytes;
    entry.memory_bytes = weights + b.kv_blocks * b.block_size * entry.kv_bytes_per_position();
  }
  return Status::ok_status();
}

// The model on the GPU: the CUDA backend, its weights uploaded, and the batching loop over a KV pool in
// device memory.
Status open_on_gpu(const LoadOptions& opts, const ServerOptions& server, LoadedModel& entry) {
  PGI_RETURN_IF_ERROR(make_cuda_backend({}, &entry.backend));
  {  // the serving loop needs a paged KV pool: a module without one is refused before the upload
    std::unique_ptr<KvPool> probe;
    PGI_RETURN_IF_ERROR(entry.backend->create_kv_pool(1, 1, 16, 1, &probe));
  }
  PGI_RETURN_IF_ERROR(entry.backend->prepare(*entry.model));
  entry.device = "cuda";
  return start_batcher(opts, server, entry);
}

// Opens the backend and the batching loop of a model being loaded (n_ctx set): cpu, the CPU with the load
// option's threads (or the engine's); cuda, the GPU or an error (OutOfMemory when the weights or the KV pool
// do not fit: SQLSTATE 53000); auto, the GPU when one is present and can hold the model, else the CPU, with
// the reason in entry.fallback_reason when a GPU was present but could not serve (on a machine without one,
// the CPU is simply the device).
Status open_serving(const LoadOptions& opts, const ServerOptions& server, LoadedModel& entry) {
  entry.fallback_reason.clear();
  if (opts.device != "cpu") {
    std::string why;
    const bool present = cuda_device_count(&why) > 0;
    const Status st = present ? open_on_gpu(opts, server, entry) : unsupported(why);
    if (st.ok()) return st;
    entry.batcher.reset();  // before the backend it runs on
    entry.backend.reset();
    if (opts.device == "cuda") return Status(st.code(), "device \"cuda\" is not available: " + st.message());
    if (present) {
      entry.fallback_reason = st.message();
      std::fprintf(stderr, "pg_infer_engine: model \"%s\" runs on the CPU: %s\n", entry.name.c_str(),
                   st.message().c_str());
    }
  }
  CpuBackendOptions cpu;
  cpu.threads = (int)(opts.threads > 0 ? opts.threads : server.threads);
  entry.backend = make_cpu_backend(cpu);
  entry.device = "cpu";
  PGI_RETURN_IF_ERROR(entry.backend->prepare(*entry.model));
  return start_batcher(opts, server, entry);
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}
Server::~Server() = default;

void Server::serve_connection(int fd) {
  for (;;) {
    wire::Frame frame;
    if (!wire::read_frame(fd, &frame).ok()) return;  // closed or malformed: drop the connection
    wire::Fields fields;
    Status st;
    if (!fields.parse(frame.body)) {
      st = invalid_argument("malformed request");
    } else {
      switch (frame.type) {
        case PGI_MSG_LOAD: st = handle_load(fields, fd); break;
        case PGI_MSG_UNLOAD: st = handle_unload(fields, fd); break;
        case PGI_MSG_MODELS: st = handle_models(fd); break;
        case PGI_MSG_GENERATE: st = handle_generate(fields, false, fd); break;
        case PGI_MSG_CHAT: st = handle_generate(fields, true, fd); break;
        case PGI_MSG_TOKENIZE: st = handle_tokenize(fields, fd); break;
        case PGI_MSG_DETOKENIZE: st = handle_detokenize(fields, fd); break;
        case PGI_MSG_STATS: st = handle_stats(fd); break;
        default: st = invalid_argument("unknown request type " + std::to_string(frame.type));
      }
    }
    if (!st.ok() && !wire::write_all(fd, wire::error_frame(st, hint_for(st, frame.type))).ok()) return;
  }
}

Status Server::find_model(const std::string& name, std::shared_ptr<LoadedModel>* out) {
  std::lock_guard<std::mutex> lock(registry_mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) return not_found("model \"" + name + "\" is not loaded");
  if (!it->second->ready) return not_ready("model \"" + name + "\" is still loading");
  *out = it->second;
  return Status::ok_status();
}

Status Server::handle_load(const wire::Fields& f, int fd) {
  const std::string name = f.str(PGI_F_NAME);
  if (name.empty() || name.size() > 63) return invalid_argument("a model name must have 1 to 63 bytes");
  LoadOptions opts;
  PGI_RETURN_IF_ERROR(parse_load_options(f.str(PGI_F_OPTIONS), &opts));
  // The path must lie inside model_dir once links and ".." are resolved (checked here again whatever the
  // client checked).
  if (options_.model_dir.empty()) {
    return permission_denied("no model folder is configured, so no model can be loaded");
  }
  std::string dir, path;
  PGI_RETURN_IF_ERROR(resolve(options_.model_dir, &dir));
  PGI_RETURN_IF_ERROR(resolve(f.str(PGI_F_PATH), &path));
  if (path.compare(0, dir.size() + 1, dir + "/") != 0) {
    return permission_denied("model file \"" + f.str(PGI_F_PATH) + "\" is outside the model folder \"" + dir + "\"");
  }
  auto entry = std::make_shared<LoadedModel>();
  entry->name = name;
  entry->path = path;
  {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    auto it = models_.find(name);
    if (it != models_.end()) {
      if (it->second->path == path) {  // loading the same file again is a no-op (or waits for the first load)
        entry = it->second;
      } else {
        return invalid_argument("model \"" + name + "\" is already loaded from \"" + it->second->path +
                                "\"; unload it first");
      }
    } else {
      models_[name] = entry;
    }
  }
  static std::mutex load_mutex;  // loads run one at a time; requests for other models go on
  {
    std::lock_guard<std::mutex> load_lock(load_mutex);
    if (!entry->ready) {
      test_slow_load(name);
      Status st = Model::load(path, &entry->model);
      if (st.ok()) st = Vocab::load(entry->model->file(), &entry->vocab);
      const int64_t trained = st.ok() ? entry->model->config().n_ctx_train : 0;
      if (st.ok() && opts.context_length > trained) {
        st = invalid_argument("context_length " + std::to_string(opts.context_length) +
                              " exceeds the model's trained context of " + std::to_string(trained));
      }
      if (st.ok()) {
        entry->n_ctx = opts.context_length > 0 ? opts.context_length : std::min<int64_t>(trained, 4096);
        st = open_serving(opts, options_, *entry);
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(registry_mutex_);
        if (models_[name] == entry) models_.erase(name);
        return st;
      }
      entry->ready = true;
    }
  }
  // Device auto on the CPU although a GPU is present: the client tells the user why.
  wire::FrameWriter ok(PGI_MSG_OK);
  if (!entry->fallback_reason.empty()) ok.str(PGI_F_MESSAGE, entry->fallback_reason);
  return reply_ok(fd, ok);
}

Status Server::handle_unload(const wire::Fields& f, int fd) {
  const std::string name = f.str(PGI_F_NAME);
  std::shared_ptr<LoadedModel> entry;
  {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    auto it = models_.find(name);
    if (it == models_.end()) return not_found("model \"" + name + "\" is not loaded");
    entry = it->second;
    models_.erase(it);
  }
  // Requests still running keep their reference; the weights go when the last one ends.
  return reply_ok(fd, wire::FrameWriter(PGI_MSG_OK));
}

Status Server::handle_models(int fd) {
  wire::FrameWriter w(PGI_MSG_OK);
  std::lock_guard<std::mutex> lock(registry_mutex_);
  for (const auto& [name, m] : models_) {
    wire::FrameWriter row(PGI_MSG_OK);
    row.str(PGI_F_NAME, name).str(PGI_F_PATH, m->path).str(PGI_F_DEVICE, m->device);
    row.str(PGI_F_STATUS, m->ready ? "ready" : "loading");
    if (m->ready) {
      row.str(PGI_F_ARCHITECTURE, m->model->config().arch_name)
          .i64(PGI_F_PARAMETERS, m->model->parameter_count())
          .str(PGI_F_TENSOR_TYPE, type_name(m->model->main_weight_type()))
          .i64(PGI_F_CONTEXT, m->n_ctx)
          .i64(PGI_F_MEMORY, m->memory_bytes);
    }
    w.row(row);
  }
  return reply_ok(fd, w);
}

Status Server::handle_stats(int fd) {
  wire::FrameWriter w(PGI_MSG_OK);
  std::lock_guard<std::mutex> lock(registry_mutex_);
  for (const auto& [name, m] : models_) {
    wire::FrameWriter row(PGI_MSG_OK);
    row.str(PGI_F_NAME, name);
    if (m->ready) {
      const BatcherStats& b = m->batcher->stats();
      const double seconds = b.busy_us.load() / 1e6;
      row.i64(PGI_F_REQUESTS, b.requests)
          .i64(PGI_F_PROMPT_TOKENS, b.prompt_tokens)
          .i64(PGI_F_GEN_TOKENS, b.generated_tokens)
          .f64(PGI_F_TOKENS_PER_S, seconds > 0 ? b.generated_tokens / seconds : 0.0)
          .i64(PGI_F_QUEUED, b.queued)
          .i64(PGI_F_ACTIVE, b.running);
      row.i64(PGI_F_KV_USED, b.blocks_used)
          .i64(PGI_F_KV_FREE, b.blocks_free)
          .i64(PGI_F_PREFIX_PROMPT, b.prefix_prompt_tokens)
          .i64(PGI_F_PREFIX_HITS, b.prefix_hit_tokens);
      // The device, and for a GPU model its memory: its own (weights and KV pool) and what is free now.
      row.str(PGI_F_DEVICE, m->device);
      if (m->device != "cpu") {
        row.i64(PGI_F_MEMORY, m->memory_bytes);
        const int64_t free_bytes = m->backend->free_device_memory();
        if (free_bytes >= 0) row.i64(PGI_F_DEVICE_FREE, free_bytes);
      }
    }
    w.row(row);
  }
  return reply_ok(fd, w);
}

Status Server::handle_tokenize(const wire::Fields& f, int fd) {
  std::shared_ptr<LoadedModel> m;
  PGI_RETURN_IF_ERROR(find_model(f.str(PGI_F_MODEL), &m));
  std::vector<int32_t> ids;
  PGI_RETURN_IF_ERROR(tokenize(*m->vocab, f.str(PGI_F_TEXT), true, &ids));
  return reply_ok(fd, wire::FrameWriter(PGI_MSG_OK).ids(PGI_F_IDS, ids));
}

Status Server::handle_detokenize(const wire::Fields& f, int fd) {
  std::shared_ptr<LoadedModel> m;
  PGI_RETURN_IF_ERROR(find_model(f.str(PGI_F_MODEL), &m));
  std::vector<int32_t> ids;
  PGI_RETURN_IF_ERROR(f.ids(PGI_F_IDS, &ids));
  std::string text;
  PGI_RETURN_IF_ERROR(detokenize(*m->vocab, ids, &text));
  if (!is_valid_utf8(text)) text = replace_invalid_utf8(text);  // SQL text must be valid
  return reply_ok(fd, wire::FrameWriter(PGI_MSG_OK).str(PGI_F_TEXT, text));
}

Status Server::handle_generate(const wire::Fields& f, bool chat, int fd) {
  const Clock::time_point start = Clock::now();
  std::shared_ptr<LoadedModel> m;
  PGI_RETURN_IF_ERROR(find_model(f.str(PGI_F_MODEL), &m));
  GenerateOptions o;
  int64_t top_k = 0, seed = -1, stream = 0;
  double temperature = 0, top_p = 1, min_p = 0, repeat_penalty = 1;
  PGI_RETURN_IF_ERROR(f.i64(PGI_F_MAX_TOKENS, 128, &o.max_tokens));
  PGI_RETURN_IF_ERROR(f.f64(PGI_F_TEMPERATURE, 0, &temperature));
  PGI_RETURN_IF_ERROR(f.f64(PGI_F_TOP_P, 1, &top_p));
  PGI_RETURN_IF_ERROR(f.i64(PGI_F_TOP_K, 0, &top_k));
  PGI_RETURN_IF_ERROR(f.f64(PGI_F_MIN_P, 0, &min_p));
  PGI_RETURN_IF_ERROR(f.f64(PGI_F_REPEAT_PENALTY, 1, &repeat_penalty));
  PGI_RETURN_IF_ERROR(f.i64(PGI_F_STREAM, 0, &stream));
  int64_t prefix_cache = 1;
  PGI_RETURN_IF_ERROR(f.i64(PGI_F_PREFIX_CACHE, 1, &prefix_cache));
  if (o.max_tokens < 0 || o.max_tokens > INT32_MAX) return invalid_argument("max_tokens must be from 0 to 2147483647");
  if (top_k < 0 || top_k > INT32_MAX) return invalid_argument("top_k must be from 0 to 2147483647");
  o.sampling.temperature = (float)temperature;
  o.sampling.top_p = (float)top_p;
  o.sampling.top_k = (int32_t)top_k;
  o.sampling.min_p = (float)min_p;
  o.sampling.repeat_penalty = (float)repeat_penalty;
  if (f.has(PGI_F_SEED)) {
    PGI_RETURN_IF_ERROR(f.i64(PGI_F_SEED, 0, &seed));
    o.sampling.seed = (uint64_t)seed;
  } else {
    o.sampling.seed = std::random_device{}();
  }
  PGI_RETURN_IF_ERROR(validate_sampling(o.sampling));
  o.stops = f.all(PGI_F_STOP);

  // The prompts' tokens: each PROMPT's text as it is (several make a batch, answered in order), or the
  // messages formatted with the model's chat template.
  std::vector<std::vector<int32_t>> prompts;
  if (chat) {
    std::vector<ChatMessage> messages;
    PGI_RETURN_IF_ERROR(parse_chat_messages(f.str(PGI_F_MESSAGES), &messages));
    ChatTemplate tmpl;
    Status st = model_chat_template(m->model->file(), &tmpl);
    if (st.code() == StatusCode::NotFound) {  // the model exists; it just cannot chat
      return unsupported("model \"" + m->name + "\" cannot chat: " + st.message());
    }
    PGI_RETURN_IF_ERROR(st);
    PGI_RETURN_IF_ERROR(chat_prompt_ids(*m->vocab, tmpl, messages, &prompts.emplace_back()));
  } else {
    for (const std::string& text : f.all(PGI_F_PROMPT)) {
      PGI_RETURN_IF_ERROR(tokenize(*m->vocab, text, true, &prompts.emplace_back()));
    }
  }
  if (prompts.empty()) return invalid_argument("no prompt given");
  if (prompts.size() > 1 && stream != 0) return invalid_argument("a batch of prompts cannot be streamed");
  for (const std::vector<int32_t>& prompt : prompts) {
    if (prompt.empty()) return invalid_argument("the prompt is empty");
    if ((int64_t)prompt.size() + o.max_tokens > m->n_ctx) {
      return invalid_argument("a prompt of " + std::to_string(prompt.size()) + " tokens plus " +
                              std::to_string(o.max_tokens) + " new tokens exceeds the context of " +
                              std::to_string(m->n_ctx) + " positions of model \"" + m->name + "\"");
    }
  }
  // Stops when the client is gone or the time is up (asked by the batching loop before each pass).
  const double limit = options_.request_timeout_s;
  auto timed_out = std::make_shared<std::atomic<bool>>(false);
  auto should_stop = [start, limit, fd, timed_out] {
    if (limit > 0 && std::chrono::duration<double>(Clock::now() - start).count() > limit) *timed_out = true;
    return timed_out->load() || peer_gone(fd);
  };
  if (o.max_tokens == 0) {  // nothing to compute
    wire::FrameWriter w(PGI_MSG_OK);
    for (size_t i = 0; i < prompts.size() && stream == 0; ++i) w.str(PGI_F_TEXT, "");
    return reply_ok(fd, w);
  }
  // The job: one sequence per prompt; the model's batcher gives each its KV blocks.
  auto job = std::make_shared<BatchJob>();
  job->should_stop = should_stop;
  for (std::vector<int32_t>& prompt : prompts) {
    auto seq = std::make_unique<BatchSequence>();
    GenerateOptions so = o;
    if (stream != 0) so.on_text = [job_ptr = job.get()](std::string_view piece) { return job_ptr->stream(piece); };
    PGI_RETURN_IF_ERROR(Generation::create(m->vocab.get(), prompt, so, &seq->generation));
    seq->max_tokens = o.max_tokens;
    seq->prefix_caching = prefix_cache != 0;
    seq->prompt = std::move(prompt);
    job->sequences.push_back(std::move(seq));
  }
  PGI_RETURN_IF_ERROR(m->batcher->submit(job));
  // Wait, streaming what comes, until the job is done (the batcher asks should_stop before each pass, so
  // a client gone or a time limit ends it too).
  std::vector<std::string> streamed;
  for (;;) {
    const bool done = job->wait_for(std::chrono::milliseconds(20), &streamed);
    for (const std::string& piece : streamed) {
      if (!wire::write_all(fd, wire::FrameWriter(PGI_MSG_PIECE).str(PGI_F_TEXT, piece).frame()).ok()) job->cancel();
    }
    streamed.clear();
    if (done) break;
  }
  PGI_RETURN_IF_ERROR(job->error());
  if (job->cancelled()) {
    if (*timed_out) return timeout("the request ran past pg_infer.request_timeout");
    return Status::ok_status();  // the client left
  }
  wire::FrameWriter w(PGI_MSG_OK);
  int64_t prompt_tokens = 0, generated_tokens = 0;
  for (const auto& seq : job->sequences) {
    if (stream == 0) w.str(PGI_F_TEXT, seq->generation->result().text);
    prompt_tokens += (int64_t)seq->prompt.size();
    generated_tokens += (int64_t)seq->generation->result().ids.size();
  }
  w.i64(PGI_F_PROMPT_TOKENS, prompt_tokens).i64(PGI_F_GEN_TOKENS, generated_tokens);
  return reply_ok(fd, w);
}

}  // namespace pginfer
