// tests/bench/bench_prefix_cache.cpp: what the prefix cache costs when no prefix is shared at all (a
// benchmark, not a test; the goal: throughput at most 2% lower than with the cache turned off).
//
// Workload: rounds of --prompts distinct random prompts (--prompt-tokens each, none sharing a block with any
// other) generating --gen tokens each, in one job, over a KV pool of the engine's default size (1 GiB), with
// the engine's batching limits. Each round runs with the prefix cache on or off, alternating which goes
// first; the pool keeps the blocks the rounds before cached, so later rounds evict.
//
// Two measurements:
//  1. Planning alone, without the model: the scheduler, KV cache manager and block pool replay the same
//     rounds (the executor's tokens made up) with the cache on and off. Checks that both settings plan the
//     very same passes (the same chunks of the same tokens at the same positions: the model then does
//     identical work, only in other blocks of the pool, so the cache can only cost its bookkeeping), and
//     times that bookkeeping per round, with the data structures in cache and with the caches flushed
//     between steps as a forward pass would.
//  2. End to end through the serving loop (engine/batcher.h) with the model: wall time per round on and
//     off, the median of the paired ratios, and the time the loop spent planning (BatcherStats::schedule_ns)
//     in each setting, which bounds the cost independently of this machine's noise. Rounds with the cache on
//     first fill the whole pool once, so that neither setting pays for touching fresh pages of it.
//
//   bench_prefix_cache [--shape llama-160m] [--type Q8_0] [--threads 2] [--prompts 32] [--prompt-tokens 200]
//                      [--gen 16] [--rounds 6] [--replays 200] [--control 0|1] [--vocab-dir DIR] [--work DIR]
// --control 1 runs both columns of the end-to-end rounds without the cache: what the machine's noise alone
// makes of the comparison.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/batcher.h"
#include "engine/block_pool.h"
#include "engine/kv_cache_manager.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/synth.h"
#include "engine/vocab.h"

using namespace pginfer;

namespace {

// Command-line settings.
struct Settings {
  std::string shape = "llama-160m";
  std::string type = "Q8_0";
  int threads = 2;
  int prompts = 32;
  int prompt_tokens = 200;
  int gen = 16;
  int rounds = 6;
  int replays = 200;
  bool control = false;  // --control: the end-to-end rounds "with the cache" run without it too (the noise floor)
  std::string vocab_dir = PG_INFER_SHARED_DIR "/vocab";
  std::string work = std::filesystem::temp_directory_path().string();
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds of the whole process (every thread).
double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The prompts of round `round`: random ids in [3, n_vocab) (past the llama vocabularies' control tokens),
// from a generator seeded by the round, so no two prompts of the run share a first block.
std::vector<std::vector<int32_t>> round_prompts(const Settings& s, int round, int64_t n_vocab) {
  uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(round + 1);
  std::vector<std::vector<int32_t>> prompts((size_t)s.prompts);
  for (auto& p : prompts) {
    for (int t = 0; t < s.prompt_tokens; ++t) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      p.push_back((int32_t)(3 + (x >> 33) % (uint64_t)(n_vocab - 3)));
    }
  }
  return prompts;
}

// KV blocks one round's sequences hold at their longest.
int64_t blocks_per_round(const Settings& s, const Batcher::Options& engine) {
  return (int64_t)s.prompts * ((s.prompt_tokens + s.gen + engine.block_size - 1) / engine.block_size);
}

// Reads every line of a buffer larger than the last-level cache, as a forward pass between two steps does.
struct CacheFlusher {
  std::vector<char> buffer = std::vector<char>(size_t{64} << 20, 1);
  volatile char sink = 0;
  void flush() {
    char acc = 0;
    for (size_t i = 0; i < buffer.size(); i += 64) acc = (char)(acc + buffer[i]++);
    sink = acc;
  }
};

// The planning stack of one model: block pool, KV cache manager and scheduler with the engine's limits.
struct Planner {
  std::unique_ptr<BlockPool> pool;
  std::unique_ptr<KvCacheManager> kv;
  std::unique_ptr<Scheduler> scheduler;

  Planner(int32_t kv_blocks, const Batcher::Options& engine) {
    if (!BlockPool::create(kv_blocks, (int32_t)engine.block_size, &pool).ok()) std::abort();
    kv = std::make_unique<KvCacheManager>(pool.get(), 1);
    if (!Scheduler::create(kv.get(), Batcher::scheduler_options(engine), &scheduler).ok()) std::abort();
  }
};

// One round planned without the model: the seconds spent in step() and update_from_output(), and appends
// every pass's work to *trace (chunk ids, positions, tokens, whether it samples) when trace is non-null.
double plan_round(Planner& p, const std::vector<std::vector<int32_t>>& prompts, int gen, bool caching,
                  RequestId* next_id, CacheFlusher* flusher, std::vector<int32_t>* trace) {
  double spent = 0;
  for (const auto& prompt : prompts) {
    SchedRequestSpec spec;
    spec.id = (*next_id)++;
    spec.session_id = 1;
    spec.prompt = prompt;
    spec.max_new_tokens = gen;
    spec.prefix_caching = caching;
    if (!p.scheduler->add_request(std::move(spec)).ok()) std::abort();
  }
  StepPlan plan;
  std::vector<StepOutput> outputs;
  StepResult result;
  while (!p.scheduler->idle()) {
    if (flusher) flusher->flush();
    double t0 = now_s();
    if (!p.scheduler->step(&plan).ok() || plan.chunks.empty()) std::abort();
    spent += now_s() - t0;
    outputs.clear();
    for (const ScheduledChunk& c : plan.chunks) {
      if (trace) {
        trace->push_back((int32_t)c.id);
        trace->push_back(c.start_pos);
        trace->push_back((int32_t)c.tokens.size());
        trace->insert(trace->end(), c.tokens.begin(), c.tokens.end());
        trace->push_back(c.sample ? 1 : 0);
      }
      if (c.sample) outputs.push_back({c.id, (int32_t)((c.id * 7919 + (uint64_t)c.start_pos) % 30000 + 3), false});
    }
    if (flusher) flusher->flush();
    t0 = now_s();
    if (!p.scheduler->update_from_output(plan, outputs, &result).ok()) std::abort();
    spent += now_s() - t0;
  }
  return spent;
}

// Part 1; false when the two settings planned different passes.
bool planning_alone(const Settings& s, int32_t kv_blocks, const Batcher::Options& engine, int64_t n_vocab) {
  // Same rounds in both settings, each on its own pool: the plans must match exactly.
  // Enough rounds for the pool to wrap twice, so that the cache evicts.
  Planner on(kv_blocks, engine), off(kv_blocks, engine);
  RequestId id_on = 1, id_off = 1;
  std::vector<int32_t> trace_on, trace_off;
  const int check_rounds = (int)std::max<int64_t>(4, 2 * kv_blocks / blocks_per_round(s, engine) + 2);
  for (int r = 0; r < check_rounds; ++r) {
    const auto prompts = round_prompts(s, r, n_vocab);
    trace_on.clear();
    trace_off.clear();
    plan_round(on, prompts, s.gen, true, &id_on, nullptr, &trace_on);
    plan_round(off, prompts, s.gen, false, &id_off, nullptr, &trace_off);
    if (trace_on != trace_off) {
      std::printf("planning: round %d plans different work with the prefix cache on and off\n", r);
      return false;
    }
  }
  std::printf("planning: %d rounds planned the same passes with the prefix cache on and off (%lld cached "
              "blocks, %lld evictions with it on)\n",
              check_rounds, (long long)on.pool->num_cached(), (long long)on.pool->stats().evictions);
  if (on.pool->stats().evictions == 0 || off.pool->num_cached() != 0) {
    std::printf("planning: expected evictions with the cache on and no cached block with it off\n");
    return false;
  }
  // Timing: alternate settings round by round, warm, then with caches flushed between steps.
  for (bool cold : {false, true}) {
    CacheFlusher flusher;
    const int replays = cold ? std::max(4, s.replays / 20) : s.replays;
    std::vector<double> t_on, t_off;
    for (int r = 0; r < replays; ++r) {
      const auto prompts = round_prompts(s, 1000 + r, n_vocab);
      const bool on_first = r % 2 == 0;
      for (int k = 0; k < 2; ++k) {
        const bool caching = (k == 0) == on_first;
        const double t = plan_round(caching ? on : off, prompts, s.gen, caching, caching ? &id_on : &id_off,
                                    cold ? &flusher : nullptr, nullptr);
        (caching ? t_on : t_off).push_back(t);
      }
    }
    std::printf("planning, %s: median per round (%d rounds each) %.3f ms with the prefix cache, %.3f ms without:"
                " the cache's bookkeeping %+.3f ms per round\n",
                cold ? "caches flushed between steps" : "warm", replays, median(t_on) * 1e3, median(t_off) * 1e3,
                (median(t_on) - median(t_off)) * 1e3);
  }
  return true;
}

// Part 2: the serving loop with the model.
int end_to_end(const Settings& s, const Batcher::Options& engine) {
  TensorType type;
  if (!parse_type_name(s.type.c_str(), &type)) return std::fprintf(stderr, "unknown type %s\n", s.type.c_str()), 2;
  const std::string path = s.work + "/bench-prefix-" + s.shape + "-" + s.type + ".gguf";
  if (!std::filesystem::exists(path)) {
    SynthOptions o;
    o.shape = s.shape;
    o.type = type;
    o.seed = 1;
    o.vocab_path = s.vocab_dir + (s.shape.find("qwen2") != std::string::npos ? "/ggml-vocab-gpt-2.gguf"
                                                                             : "/ggml-vocab-llama-spm.gguf");
    Status st = write_synthetic_model(o, path);
    if (!st.ok()) return std::fprintf(stderr, "cannot write %s: %s\n", path.c_str(), st.message().c_str()), 1;
  }
  std::unique_ptr<Model> model;
  std::unique_ptr<Vocab> vocab;
  Status st = Model::load(path, &model);
  if (st.ok()) st = Vocab::load(model->file(), &vocab);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  std::unique_ptr<Backend> backend = make_cpu_backend({s.threads});
  st = backend->prepare(*model);
  std::unique_ptr<Batcher> batcher;
  if (st.ok()) st = Batcher::create(*model, *backend, engine, &batcher);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  const int64_t n_vocab = model->config().n_vocab;

  // One round: wall and CPU seconds, and the loop's planning seconds.
  struct Round {
    double wall = 0, cpu = 0, planning = 0;
  };
  auto run = [&](int round, bool caching, Round* out) -> bool {
    GenerateOptions o;
    o.max_tokens = s.gen;
    o.stop_at_eog = false;
    auto job = std::make_shared<BatchJob>();
    for (auto& p : round_prompts(s, round, n_vocab)) {
      auto seq = std::make_unique<BatchSequence>();
      seq->prompt = std::move(p);
      seq->max_tokens = s.gen;
      seq->prefix_caching = caching && !s.control;
      if (!Generation::create(vocab.get(), seq->prompt, o, &seq->generation).ok()) return false;
      job->sequences.push_back(std::move(seq));
    }
    const int64_t planned0 = batcher->stats().schedule_ns.load();
    const double w0 = now_s(), c0 = cpu_s();
    if (!batcher->submit(job).ok()) return false;
    std::vector<std::string> pieces;
    while (!job->wait_for(std::chrono::milliseconds(5), &pieces)) {
    }
    out->wall = now_s() - w0;
    out->cpu = cpu_s() - c0;
    out->planning = 1e-9 * (double)(batcher->stats().schedule_ns.load() - planned0);
    return job->error().ok();
  };
  // Warm-up: rounds with the cache on until the pool has been used whole (its pages are touched lazily).
  const int64_t per_round = blocks_per_round(s, engine);
  const int warm_rounds = (int)((engine.kv_blocks + per_round - 1) / per_round);
  for (int r = 0; r < warm_rounds; ++r) {
    Round warm;
    if (!run(-1 - r, true, &warm)) return std::fprintf(stderr, "warm-up round failed\n"), 1;
  }
  std::vector<double> wall_ratio, cpu_ratio, plan_on, plan_off, wall_on, wall_off;
  for (int r = 0; r < s.rounds; ++r) {
    Round on, off;
    const bool on_first = r % 2 == 0;
    bool ok = on_first ? run(2 * r, true, &on) && run(2 * r + 1, false, &off)
                       : run(2 * r, false, &off) && run(2 * r + 1, true, &on);
    if (!ok) return std::fprintf(stderr, "round %d failed\n", r), 1;
    wall_ratio.push_back(off.wall / on.wall);
    cpu_ratio.push_back(off.cpu / on.cpu);
    plan_on.push_back(on.planning);
    plan_off.push_back(off.planning);
    wall_on.push_back(on.wall);
    wall_off.push_back(off.wall);
    std::printf("round %d (%s first): cache on %.3f s (cpu %.2f s, planning %.2f ms), off %.3f s (cpu %.2f s, "
                "planning %.2f ms): throughput with the cache %+.1f%%\n",
                r + 1, on_first ? "on" : "off", on.wall, on.cpu, on.planning * 1e3, off.wall, off.cpu,
                off.planning * 1e3, (off.wall / on.wall - 1) * 100);
  }
  const double bookkeeping = median(plan_on) - median(plan_off);
  std::printf("end to end, %d rounds of %d prompts x %d tokens + %d new: throughput with the prefix cache vs "
              "without, median of paired rounds: wall %+.1f%% (range %+.1f%% .. %+.1f%%), cpu time %+.1f%% "
              "(goal >= -2%%)\n",
              s.rounds, s.prompts, s.prompt_tokens, s.gen, (median(wall_ratio) - 1) * 100,
              (*std::min_element(wall_ratio.begin(), wall_ratio.end()) - 1) * 100,
              (*std::max_element(wall_ratio.begin(), wall_ratio.end()) - 1) * 100, (median(cpu_ratio) - 1) * 100);
  std::printf("planning inside the loop, median per round: %.2f ms with the cache, %.2f ms without, of %.2f s a "
              "round: the cache's bookkeeping costs %.4f%% of throughput (the passes compute the same)\n",
              median(plan_on) * 1e3, median(plan_off) * 1e3, median(wall_off), 100 * bookkeeping / median(wall_off));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shape") s.shape = v;
    else if (k == "--type") s.type = v;
    else if (k == "--threads") s.threads = std::atoi(v.c_str());
    else if (k == "--prompts") s.prompts = std::atoi(v.c_str());
    else if (k == "--prompt-tokens") s.prompt_tokens = std::atoi(v.c_str());
    else if (k == "--gen") s.gen = std::atoi(v.c_str());
    else if (k == "--rounds") s.rounds = std::atoi(v.c_str());
    else if (k == "--replays") s.replays = std::atoi(v.c_str());
    else if (k == "--control") s.control = v == "1";
    else if (k == "--vocab-dir") s.vocab_dir = v;
    else if (k == "--work") s.work = v;
    else return std::fprintf(stderr, "unknown option %s\n", k.c_str()), 2;
  }
  if (s.prompts < 1 || s.prompt_tokens < 1 || s.gen < 1 || s.rounds < 1 || s.replays < 1 || s.threads < 0) {
    return std::fprintf(stderr, "counts must be positive\n"), 2;
  }
  const SynthShape* shape = find_synth_shape(s.shape);
  if (shape == nullptr) {
    return std::fprintf(stderr, "unknown shape %s (%s)\n", s.shape.c_str(), synth_shape_names().c_str()), 2;
  }
  // The engine's limits, and its default pool on the CPU: 1 GiB of F16 keys and values.
  Batcher::Options engine;
  engine.model_key = 1;
  const int64_t kv_dim = (int64_t)shape->n_head_kv * (shape->n_embd / shape->n_head);
  const int64_t block_bytes = engine.block_size * shape->n_layer * kv_dim * 2 * 2;
  engine.kv_blocks = (int64_t{1} << 30) / block_bytes;
  std::printf("model: %s %s, %d threads; %d prompts x %d tokens + %d new per round; KV pool %lld blocks of %lld%s\n",
              s.shape.c_str(), s.type.c_str(), s.threads, s.prompts, s.prompt_tokens, s.gen,
              (long long)engine.kv_blocks, (long long)engine.block_size,
              s.control ? "; CONTROL: the cache is off in both columns" : "");
  // Vocabulary size only matters for the prompts' ids; the llama vocabulary has 32000.
  if (!planning_alone(s, (int32_t)engine.kv_blocks, engine, 32000)) return 1;
  return end_to_end(s, engine);
}
