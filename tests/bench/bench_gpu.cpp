// tests/bench/bench_gpu.cpp: decode (batch 1) and prefill throughput of the CUDA backend on synthetic models
// of real shapes. Not a test: prints tokens/s, the weight bytes read per decoded token over the time per
// token as a fraction of the GPU's memory bandwidth (--peak-gbs, default an H100 SXM's 3350 GB/s), and
// prefill TFLOP/s (matrix products only), and the serving loop's aggregate decode rate with many sequences
// (engine/batcher.h over the GPU's paged KV pool) against one sequence through the same loop.
//
//   bench_gpu --vocab-dir DIR [--models tinyllama-1.1b:F16,qwen2-0.5b:Q8_0] [--prompt 512] [--gen 64]
//             [--peak-gbs 3350] [--work DIR] [--graphs 1]
// --graphs 0 measures everything without CUDA graphs (the decode lines then compare two such backends).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/batcher.h"
#include "engine/cuda_backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/synth.h"
#include "engine/vocab.h"

using namespace pginfer;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Bytes of weights one decoded token reads: every layer's matrices, the output matrix, one embedding row.
double weight_bytes_per_token(const Model& m) {
  double bytes = 0;
  for (const LayerWeights& L : m.layers()) {
    for (const GgufTensor* t : {L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up, L.ffn_down, L.attn_norm, L.ffn_norm}) {
      bytes += (double)t->n_bytes;
    }
  }
  bytes += (double)m.output().n_bytes;
  bytes += (double)m.token_embd().n_bytes / (double)m.token_embd().ne[1];
  return bytes;
}

// Multiply-adds of the matrix products of one token, times two.
double flops_per_token(const Model& m) {
  double f = 0;
  for (const LayerWeights& L : m.layers()) {
    for (const GgufTensor* t : {L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up, L.ffn_down}) f += 2.0 * (double)t->n_elements();
  }
  return f + 2.0 * (double)m.output().n_elements();
}

// Generated tokens per second of `n_seqs` greedy sequences (distinct 16-token prompts, no end of
// generation) run together through a Batcher on `backend`, each generating n_gen tokens; -1 on failure.
double serving_rate(const Model& model, Backend& backend, int64_t n_seqs, int64_t n_gen) {
  std::unique_ptr<Vocab> vocab;
  if (!Vocab::load(model.file(), &vocab).ok()) return -1;
  Batcher::Options bo;
  bo.max_running = std::max<int64_t>(64, n_seqs);
  bo.kv_blocks = n_seqs * ((16 + n_gen) / bo.block_size + 2);
  std::unique_ptr<Batcher> batcher;
  Status st = Batcher::create(model, backend, bo, &batcher);
  if (!st.ok()) return std::fprintf(stderr, "batcher: %s\n", st.message().c_str()), -1;
  GenerateOptions o;
  o.max_tokens = n_gen;
  o.stop_at_eog = false;
  auto job = std::make_shared<BatchJob>();
  const int64_t V = model.config().n_vocab;
  for (int64_t i = 0; i < n_seqs; ++i) {
    auto seq = std::make_unique<BatchSequence>();
    for (int64_t j = 0; j < 16; ++j) seq->prompt.push_back((int32_t)((1000 + 7919 * i + 104729 * j) % V));
    seq->max_tokens = n_gen;
    seq->prefix_caching = false;
    if (!Generation::create(vocab.get(), seq->prompt, o, &seq->generation).ok()) return -1;
    job->sequences.push_back(std::move(seq));
  }
  const double t0 = now_s();
  if (!batcher->submit(job).ok()) return -1;
  std::vector<std::string> pieces;
  while (!job->wait_for(std::chrono::milliseconds(20), &pieces)) {
  }
  if (!job->error().ok()) return std::fprintf(stderr, "serving: %s\n", job->error().message().c_str()), -1;
  return (double)batcher->stats().generated_tokens.load() / (now_s() - t0);
}

int run_one(const std::string& shape, const std::string& type_str, const std::string& vocab_dir,
            const std::string& work, int64_t n_prompt, int64_t n_gen, double peak_gbs, bool graphs) {
  TensorType type;
  if (!parse_type_name(type_str.c_str(), &type)) {
    std::fprintf(stderr, "unknown type %s\n", type_str.c_str());
    return 2;
  }
  const std::string path = work + "/" + shape + "-" + type_str + ".gguf";
  if (!std::filesystem::exists(path)) {
    SynthOptions o;
    o.shape = shape;
    o.type = type;
    o.seed = 1;
    o.vocab_path = vocab_dir + (shape.find("qwen2") != std::string::npos ? "/ggml-vocab-gpt-2.gguf"
                                                                         : "/ggml-vocab-llama-spm.gguf");
    const double t0 = now_s();
    Status st = write_synthetic_model(o, path);
    if (!st.ok()) {
      std::fprintf(stderr, "cannot write %s: %s\n", path.c_str(), st.message().c_str());
      return 1;
    }
    std::printf("wrote %s in %.1f s\n", path.c_str(), now_s() - t0);
  }
  std::unique_ptr<Model> model;
  Status st = Model::load(path, &model);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  std::unique_ptr<Backend> gpu;
  CudaBackendOptions options;
  options.graphs = graphs;
  st = make_cuda_backend(options, &gpu);
  if (!st.ok()) return std::fprintf(stderr, "no CUDA device: %s\n", st.message().c_str()), 1;
  double t0 = now_s();
  st = gpu->prepare(*model);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  const double upload_s = now_s() - t0;
  // For the decode comparison: the same backend launching every kernel as it comes (no CUDA graphs), and one whose
  // kernels launch early (CudaBackendOptions::early_launch).
  std::unique_ptr<Backend> launches, early;
  CudaBackendOptions no_graphs, early_options = options;
  no_graphs.graphs = false;
  early_options.early_launch = true;
  st = make_cuda_backend(no_graphs, &launches);
  if (st.ok()) st = launches->prepare(*model);
  if (st.ok()) st = make_cuda_backend(early_options, &early);
  if (st.ok()) st = early->prepare(*model);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  std::unique_ptr<Session> s, s_launches, s_early;
  st = Session::create(*model, *gpu, n_prompt + n_gen + 16, &s);
  if (st.ok()) st = Session::create(*model, *launches, n_prompt + n_gen + 16, &s_launches);
  if (st.ok()) st = Session::create(*model, *early, n_prompt + n_gen + 16, &s_early);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.message().c_str()), 1;
  const int64_t V = model->config().n_vocab;
  std::vector<int32_t> prompt(n_prompt);
  uint64_t x = 12345;
  for (auto& id : prompt) x = x * 6364136223846793005ull + 1442695040888963407ull, id = (int32_t)((x >> 33) % (uint64_t)V);
  std::vector<float> logits;
  // Warm-up (cuBLAS heuristics, kernel loading), then forget it.
  for (Session* w : {s.get(), s_launches.get(), s_early.get()}) {
    w->eval(std::span<const int32_t>(prompt.data(), 16), false, &logits);
    std::vector<int32_t> one = {argmax(logits)};
    for (int i = 0; i < 4; ++i) w->eval(one, false, &logits);
  }
  // Decoding n_gen tokens with session `d` after a context of `ctx` prompt tokens: seconds per token. The first
  // two steps (a pass shape seen for the first time runs launched, the second is captured) are not timed.
  auto decode = [&](Session* d, int64_t ctx) {
    d->rewind(0);
    d->eval(std::span<const int32_t>(prompt.data(), ctx), false, &logits);
    std::vector<int32_t> next = {argmax(logits)};
    for (int i = 0; i < 2; ++i) {
      d->eval(next, false, &logits);
      next = {argmax(logits)};
    }
    const double t = now_s();
    for (int64_t i = 0; i < n_gen; ++i) {
      d->eval(next, false, &logits);
      next = {argmax(logits)};
    }
    return (now_s() - t) / n_gen;
  };
  s->rewind(0);
  t0 = now_s();
  s->eval(prompt, false, &logits);
  const double prefill_s = now_s() - t0;
  const double bytes = weight_bytes_per_token(*model);
  const double tflops = flops_per_token(*model) * n_prompt / prefill_s / 1e12;
  std::printf("%-16s %-5s weights %.0f MiB (upload %.2f s)\n", shape.c_str(), type_str.c_str(), bytes / 1048576.0,
              upload_s);
  for (int64_t ctx : {(int64_t)16, n_prompt}) {
    const double per_token = decode(s.get(), ctx);
    const double gbs = bytes / per_token / 1e9;
    std::printf("  decode  batch 1 after %4lld tokens: %7.1f tok/s, %.3f ms/token, %5.0f GB/s of weights = %4.1f%% of %.0f GB/s\n",
                (long long)ctx, 1.0 / per_token, 1e3 * per_token, gbs, 100.0 * gbs / peak_gbs, peak_gbs);
    const double launched = decode(s_launches.get(), ctx);
    std::printf("          without CUDA graphs: %7.1f tok/s, %.3f ms/token; graphs %.2fx\n", 1.0 / launched,
                1e3 * launched, launched / per_token);
    const double early_launched = decode(s_early.get(), ctx);
    std::printf("          with early launch:   %7.1f tok/s, %.3f ms/token, %4.1f%% of %.0f GB/s; %.2fx\n",
                1.0 / early_launched, 1e3 * early_launched, 100.0 * bytes / early_launched / 1e9 / peak_gbs, peak_gbs,
                per_token / early_launched);
  }
  const PassCounts counts = gpu->pass_counts();
  std::printf("  CUDA graphs so far: %lld captured, %lld replayed, %lld passes issued again\n",
              (long long)counts.captured, (long long)counts.replayed, (long long)counts.reissued);
  s_launches.reset();
  s_early.reset();
  launches.reset();
  early.reset();
  std::printf("  prefill %lld tokens: %.1f tok/s, %.1f TFLOP/s (matrix products)\n", (long long)n_prompt,
              n_prompt / prefill_s, tflops);
  // The serving loop: one sequence, then many at once (prompts included in the time; they are short).
  s.reset();
  const double one_rate = serving_rate(*model, *gpu, 1, n_gen);
  for (int64_t n : {(int64_t)16, (int64_t)64}) {
    const double rate = serving_rate(*model, *gpu, n, n_gen);
    std::printf("  serving %2lld sequences x %lld tokens: %8.1f tok/s in all; 1 sequence %.1f tok/s; ratio %.1f\n",
                (long long)n, (long long)n_gen, rate, one_rate, rate / one_rate);
  }
  // One matrix-vector product alone, repeated (no other kernels between): the kernel's own bandwidth.
  for (const GgufTensor* w : {model->layers()[0].wq, model->layers()[0].ffn_up, &model->output()}) {
    const int64_t k = w->ne[0], rows = w->ne[1], reps = 50;
    std::unique_ptr<ActivationBuffer> xb, yb;
    if (!gpu->alloc(k, &xb).ok() || !gpu->alloc(rows, &yb).ok()) break;
    std::vector<float> xh(k, 0.5f), y1(1);
    gpu->write(xh.data(), k, xb->data());
    for (int i = 0; i < 3; ++i) gpu->matmul(*w, nullptr, xb->data(), 1, yb->data());
    gpu->read(yb->data(), 1, y1.data());
    t0 = now_s();
    for (int i = 0; i < reps; ++i) gpu->matmul(*w, nullptr, xb->data(), 1, yb->data());
    gpu->read(yb->data(), 1, y1.data());
    const double per = (now_s() - t0) / reps;
    std::printf("  matvec %-22s %5lld x %5lld: %7.1f us, %5.0f GB/s\n", w->name.c_str(), (long long)rows,
                (long long)k, 1e6 * per, (double)w->n_bytes / per / 1e9);
  }
  // Attention of a whole prompt alone (one layer, the model's heads; the tiled kernel): its rate in TFLOP/s, scores
  // and weighted values of the causal half counted (4 n^2/2 head_dim per head).
  {
    const ModelConfig& c = model->config();
    const AttentionParams ap = AttentionParams::of(c);
    const int64_t n = n_prompt;
    std::unique_ptr<KvCache> kv;
    std::unique_ptr<ActivationBuffer> q, k, v, out;
    if (gpu->create_kv_cache(1, n, c.kv_dim(), &kv).ok() && gpu->alloc(n * c.q_dim(), &q).ok() &&
        gpu->alloc(n * c.kv_dim(), &k).ok() && gpu->alloc(n * c.kv_dim(), &v).ok() &&
        gpu->alloc(n * c.q_dim(), &out).ok()) {
      std::vector<float> host(n * c.q_dim(), 0.01f), y1(1);
      gpu->write(host.data(), n * c.q_dim(), q->data());
      gpu->write(host.data(), n * c.kv_dim(), k->data());
      gpu->write(host.data(), n * c.kv_dim(), v->data());
      std::vector<int32_t> pos(n);
      for (int64_t i = 0; i < n; ++i) pos[i] = (int32_t)i;
      gpu->attention(*kv, 0, q->data(), k->data(), v->data(), pos.data(), n, ap, out->data());
      gpu->read(out->data(), 1, y1.data());
      const int reps = 5;
      t0 = now_s();
      for (int i = 0; i < reps; ++i) {
        gpu->attention(*kv, 0, q->data(), k->data(), v->data(), pos.data(), n, ap, out->data());
      }
      gpu->read(out->data(), 1, y1.data());
      const double per = (now_s() - t0) / reps;
      const double flops = 4.0 * (double)n * (double)n / 2 * (double)c.head_dim * (double)c.n_head;
      std::printf("  attention of %lld tokens, one layer: %7.1f us, %.1f TFLOP/s\n", (long long)n, 1e6 * per,
                  flops / per / 1e12);
    }
  }
  // A chain of tiny kernels: the cost of one launch in a decoding step.
  {
    std::unique_ptr<ActivationBuffer> a;
    if (gpu->alloc(2048, &a).ok()) {
      std::vector<float> y1(1);
      const int reps = 2000;
      t0 = now_s();
      for (int i = 0; i < reps; ++i) gpu->add(a->data(), a->data(), 2048, a->data());
      gpu->read(a->data(), 1, y1.data());
      std::printf("  tiny kernel (add of 2048 floats) in a chain: %.2f us each\n", 1e6 * (now_s() - t0) / reps);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string models = "tinyllama-1.1b:F16,qwen2-0.5b:Q8_0", vocab_dir, work;
  int64_t n_prompt = 512, n_gen = 64;
  double peak = 3350;
  bool graphs = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--models") models = v;
    else if (a == "--vocab-dir") vocab_dir = v;
    else if (a == "--work") work = v;
    else if (a == "--prompt") n_prompt = std::atoll(v.c_str());
    else if (a == "--gen") n_gen = std::atoll(v.c_str());
    else if (a == "--peak-gbs") peak = std::atof(v.c_str());
    else if (a == "--graphs") graphs = v != "0";
    else return std::fprintf(stderr, "unknown option %s\n", a.c_str()), 2;
  }
  if (vocab_dir.empty()) return std::fprintf(stderr, "missing --vocab-dir DIR (../shared/vocab)\n"), 2;
  if (work.empty()) work = std::filesystem::temp_directory_path().string();
  std::string why;
  if (cuda_device_count(&why) <= 0) {
    std::printf("no CUDA device: %s\n", why.c_str());
    return 0;
  }
  std::stringstream ss(models);
  std::string item;
  int rc = 0;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos) return std::fprintf(stderr, "--models wants SHAPE:TYPE,...\n"), 2;
    rc |= run_one(item.substr(0, colon), item.substr(colon + 1), vocab_dir, work, n_prompt, n_gen, peak, graphs);
  }
  return rc;
}
