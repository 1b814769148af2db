// tools/infer/cmd_model.cpp: the subcommands that run a model: info, generate, score, bench.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/profiling_backend.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "kernels/cpu/cpu_features.h"
#include "tools/infer/args.h"
#include "tools/infer/commands.h"
#include "tools/infer/runner.h"

namespace pginfer::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Log-sum-exp of one row of logits, in double.
double log_sum_exp(const float* row, int64_t n) {
  float m = row[0];
  for (int64_t i = 1; i < n; ++i) m = row[i] > m ? row[i] : m;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::exp((double)row[i] - m);
  return m + std::log(s);
}

}  // namespace

int cmd_info(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"-m", "--model"}, {})) return fail("info", args.error(), kExitUsage);
  const std::string path = args.has("-m") ? args.str("-m") : args.str("--model");
  if (path.empty()) return fail("info", "missing -m MODEL", kExitUsage);
  std::unique_ptr<Model> model;
  Status st = Model::load(path, &model);
  if (!st.ok()) return fail("info", st);
  const ModelConfig& c = model->config();
  std::string name;
  model->file().get_string("general.name", &name);
  std::printf("file:            %s\n", path.c_str());
  std::printf("name:            %s\n", name.c_str());
  std::printf("architecture:    %s\n", c.arch_name.c_str());
  std::printf("parameters:      %lld\n", (long long)model->parameter_count());
  std::printf("tensor type:     %s\n", type_name(model->main_weight_type()));
  std::printf("tensor types:   ");
  std::vector<std::pair<TensorType, int>> counts;
  for (const GgufTensor& t : model->file().tensors()) {
    bool found = false;
    for (auto& [type, n] : counts) {
      if (type == t.type) ++n, found = true;
    }
    if (!found) counts.push_back({t.type, 1});
  }
  for (auto& [type, n] : counts) std::printf(" %s:%d", type_name(type), n);
  std::printf("\n");
  std::printf("context length:  %lld\n", (long long)c.n_ctx_train);
  std::printf("vocab size:      %lld\n", (long long)c.n_vocab);
  std::printf("embedding:       %lld\n", (long long)c.n_embd);
  std::printf("layers:          %lld\n", (long long)c.n_layer);
  std::printf("heads:           %lld (kv %lld, head dim %lld)\n", (long long)c.n_head, (long long)c.n_head_kv,
              (long long)c.head_dim);
  std::printf("feed-forward:    %lld\n", (long long)c.n_ff);
  std::printf("rope:            base %g, scale %g%s\n", c.rope_freq_base, c.rope_freq_scale,
              model->rope_freqs() ? ", frequency factors" : "");
  std::printf("output:          %s\n", model->output_tied() ? "tied to token_embd" : "separate");
  std::printf("file size:       %zu bytes\n", model->file().file_size());
  return kExitOk;
}

int cmd_generate(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2,
                  {"-m", "-p", "--prompt-ids", "-n", "--temp", "--seed", "--threads", "--ctx", "--top-k", "--top-p",
                   "--min-p", "--repeat-penalty", "--frequency-penalty", "--presence-penalty", "--stop", "--device"},
                  {"--ids"})) {
    return fail("generate", args.error(), kExitUsage);
  }
  if (!args.has("-m")) return fail("generate", "missing -m MODEL", kExitUsage);
  if (args.has("-p") == args.has("--prompt-ids")) {
    return fail("generate", "give the prompt as -p TEXT or as --prompt-ids \"ID ID ...\"", kExitUsage);
  }
  // The vocabulary, when text goes in or comes out, read from the model's own file.
  Runner r;
  std::unique_ptr<Vocab> vocab;
  if (args.has("-p") || !args.has("--ids")) {
    Status st = Model::load(args.str("-m"), &r.model);
    if (st.ok()) st = Vocab::load(r.model->file(), &vocab);
    if (!st.ok()) return fail("generate", st);
  }
  std::vector<int32_t> prompt;
  std::string err;
  if (args.has("-p")) {
    Status st = tokenize(*vocab, args.str("-p"), true, &prompt);
    if (!st.ok()) return fail("generate", st);
  } else if (!parse_ids(args.str("--prompt-ids"), &prompt, &err)) {
    return fail("generate", err, kExitUsage);
  }
  if (prompt.empty()) return fail("generate", "the prompt is empty", kExitUsage);
  int64_t n_ctx = 0;
  if (!args.integer("--ctx", 0, 0, 1 << 24, &n_ctx)) return fail("generate", args.error(), kExitUsage);
  GenerateOptions options;
  Status st = generate_options_from_flags(args, 16, &options);
  if (!st.ok()) return fail("generate", st);
  if (n_ctx == 0) n_ctx = (int64_t)prompt.size() + options.max_tokens;
  st = open_runner(args, n_ctx, &r);
  if (!st.ok()) return fail("generate", st);
  // --ids prints the raw continuation of exactly n tokens (as the llama.cpp reference does); text output
  // ends at an end-of-generation token or at the --stop string, neither of which is printed.
  const bool text_out = !args.has("--ids");
  GenerateResult result;
  st = generate(*r.session, text_out ? vocab.get() : nullptr, prompt, options, &result);
  if (!st.ok()) return fail("generate", st);
  if (!text_out) {
    for (size_t i = 0; i < result.ids.size(); ++i) std::printf("%s%d", i ? " " : "", result.ids[i]);
    std::printf("\n");
    return kExitOk;
  }
  std::printf("%s\n", result.text.c_str());
  return kExitOk;
}

int cmd_score(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"-m", "--ids", "--threads", "--device"}, {"--json"})) {
    return fail("score", args.error(), kExitUsage);
  }
  if (!args.has("-m")) return fail("score", "missing -m MODEL", kExitUsage);
  std::vector<int32_t> ids;
  std::string err;
  if (!parse_ids(args.str("--ids"), &ids, &err)) return fail("score", err, kExitUsage);
  if (ids.size() < 1) return fail("score", "missing --ids \"ID ID ...\"", kExitUsage);
  Runner r;
  Status st = open_runner(args, (int64_t)ids.size(), &r);
  if (!st.ok()) return fail("score", st);
  std::vector<float> logits;
  st = r.session->eval(ids, true, &logits);
  if (!st.ok()) return fail("score", st);
  const int64_t n_vocab = r.model->config().n_vocab;
  std::vector<int32_t> best;
  std::vector<double> nll, top_logprob;
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* row = logits.data() + i * n_vocab;
    best.push_back(argmax(std::span<const float>(row, n_vocab)));
    const double lse = log_sum_exp(row, n_vocab);
    top_logprob.push_back(row[best.back()] - lse);
    if (i + 1 < ids.size()) nll.push_back(lse - row[ids[i + 1]]);
  }
  double mean = 0;
  for (double x : nll) mean += x;
  mean = nll.empty() ? 0.0 : mean / nll.size();
  std::printf("{\"argmax\": [");
  for (size_t i = 0; i < best.size(); ++i) std::printf("%s%d", i ? ", " : "", best[i]);
  std::printf("], \"nll\": [");
  for (size_t i = 0; i < nll.size(); ++i) std::printf("%s%.6f", i ? ", " : "", nll[i]);
  std::printf("], \"top_logprob\": [");
  for (size_t i = 0; i < top_logprob.size(); ++i) std::printf("%s%.6f", i ? ", " : "", top_logprob[i]);
  std::printf("], \"ppl\": %.6f}\n", std::exp(mean));
  return kExitOk;
}

int cmd_bench(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"-m", "--prompt", "--gen", "--threads", "--device"}, {"--json", "--profile"})) {
    return fail("bench", args.error(), kExitUsage);
  }
  if (!args.has("-m")) return fail("bench", "missing -m MODEL", kExitUsage);
  int64_t n_prompt = 0, n_gen = 0;
  if (!args.integer("--prompt", 128, 1, 1 << 20, &n_prompt) || !args.integer("--gen", 32, 1, 1 << 20, &n_gen)) {
    return fail("bench", args.error(), kExitUsage);
  }
  Runner r;
  Status st = open_runner(args, n_prompt + n_gen, &r);
  if (!st.ok()) return fail("bench", st);
  // --profile: the session runs through a ProfilingBackend, which times every operation (and waits after each).
  std::unique_ptr<ProfilingBackend> profiler;
  if (args.has("--profile")) {
    profiler = std::make_unique<ProfilingBackend>(*r.backend);
    st = Session::create(*r.model, *profiler, n_prompt + n_gen, &r.session);
    if (!st.ok()) return fail("bench", st);
  }
  const int64_t n_vocab = r.model->config().n_vocab;
  std::vector<int32_t> prompt(n_prompt);
  uint64_t x = 12345;
  for (auto& id : prompt) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    id = (int32_t)((x >> 33) % (uint64_t)n_vocab);
  }
  std::vector<float> logits;
  // Warm-up: touches every weight page once, then forgets the positions.
  st = r.session->eval(std::span<const int32_t>(prompt.data(), std::min<int64_t>(n_prompt, 16)), false, &logits);
  if (!st.ok()) return fail("bench", st);
  r.session->rewind(0);
  if (profiler) profiler->reset();
  auto t0 = std::chrono::steady_clock::now();
  st = r.session->eval(prompt, false, &logits);
  if (!st.ok()) return fail("bench", st);
  const double prefill_s = seconds_since(t0);
  std::string prefill_profile;
  if (profiler) prefill_profile = profiler->report(), profiler->reset();
  std::vector<int32_t> next(1, argmax(logits));
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n_gen; ++i) {
    st = r.session->eval(next, false, &logits);
    if (!st.ok()) return fail("bench", st);
    next[0] = argmax(logits);
  }
  const double decode_s = seconds_since(t0);
  if (args.has("--json")) {
    std::printf("{\"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"simd\": \"%s\"}\n", n_prompt / prefill_s,
                n_gen / decode_s, simd_level_name(simd_level()));
  } else {
    std::printf("prefill: %lld tokens in %.3f s (%.2f tok/s)\n", (long long)n_prompt, prefill_s,
                n_prompt / prefill_s);
    std::printf("decode:  %lld tokens in %.3f s (%.2f tok/s)\n", (long long)n_gen, decode_s, n_gen / decode_s);
  }
  if (profiler) {  // to stderr, so that --json output stays one line
    std::fflush(stdout);
    std::fprintf(stderr, "prefill of %lld tokens, by operation (each followed by a wait for the device):\n%s\n",
                 (long long)n_prompt, prefill_profile.c_str());
    std::fprintf(stderr, "decode of %lld tokens, by operation:\n%s", (long long)n_gen, profiler->report().c_str());
  }
  return kExitOk;
}

}  // namespace pginfer::cli
