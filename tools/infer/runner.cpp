// tools/infer/runner.cpp: opening a model, backend and session for a subcommand; failure reporting.
#include "tools/infer/runner.h"

#include <climits>
#include <cstdio>

#include "engine/cuda_backend.h"

namespace pginfer::cli {

int fail(const char* cmd, const std::string& message, int code) {
  std::fprintf(stderr, "infer %s: %s\n", cmd, message.c_str());
  return code;
}

int fail(const char* cmd, const Status& st) {
  const int code = st.code() == StatusCode::InvalidArgument ? kExitUsage : kExitFailure;
  return fail(cmd, st.message(), code);
}

Status open_runner(Args& args, int64_t n_ctx, Runner* r) {
  int64_t threads = 0;
  if (!args.integer("--threads", 0, 0, 1024, &threads)) return invalid_argument(args.error());
  const std::string device = args.has("--device") ? args.str("--device") : "cpu";
  if (device != "cpu" && device != "cuda" && device != "auto") {
    return invalid_argument("--device must be cpu, cuda or auto, not \"" + device + "\"");
  }
  if (r->model == nullptr) PGI_RETURN_IF_ERROR(Model::load(args.str("-m"), &r->model));
  r->backend.reset();
  if (device != "cpu") {
    // cuda: the GPU or an error; auto: the GPU when one is usable, else the CPU (said on stderr).
    std::string why;
    Status st = cuda_device_count(&why) > 0 ? make_cuda_backend({}, &r->backend) : unsupported(why);
    if (st.ok()) st = r->backend->prepare(*r->model);
    if (!st.ok()) {
      if (device == "cuda") return st;
      std::fprintf(stderr, "infer: running on the CPU: %s\n", st.message().c_str());
      r->backend.reset();
    }
  }
  if (r->backend == nullptr) {
    CpuBackendOptions options;
    options.threads = (int)threads;
    r->backend = make_cpu_backend(options);
    PGI_RETURN_IF_ERROR(r->backend->prepare(*r->model));
  }
  if (n_ctx > r->model->config().n_ctx_train) {
    return invalid_argument(std::to_string(n_ctx) + " positions exceed the model's context length of " +
                            std::to_string(r->model->config().n_ctx_train));
  }
  return Session::create(*r->model, *r->backend, n_ctx, &r->session);
}

Status generate_options_from_flags(Args& args, int64_t default_n, GenerateOptions* options) {
  int64_t n_new = 0, seed = 0, top_k = 0;
  double temp = 0, top_p = 1, min_p = 0, repeat_penalty = 1, frequency_penalty = 0, presence_penalty = 0;
  if (!args.integer("-n", default_n, 0, 1 << 24, &n_new) || !args.integer("--seed", 0, 0, INT64_MAX, &seed) ||
      !args.number("--temp", 0.0, &temp) || !args.integer("--top-k", 0, INT32_MIN, INT32_MAX, &top_k) ||
      !args.number("--top-p", 1.0, &top_p) || !args.number("--min-p", 0.0, &min_p) ||
      !args.number("--repeat-penalty", 1.0, &repeat_penalty) ||
      !args.number("--frequency-penalty", 0.0, &frequency_penalty) ||
      !args.number("--presence-penalty", 0.0, &presence_penalty)) {
    return invalid_argument(args.error());
  }
  SamplingParams& sp = options->sampling;
  sp.temperature = (float)temp;
  sp.top_k = (int32_t)top_k;
  sp.top_p = (float)top_p;
  sp.min_p = (float)min_p;
  sp.repeat_penalty = (float)repeat_penalty;
  sp.frequency_penalty = (float)frequency_penalty;
  sp.presence_penalty = (float)presence_penalty;
  sp.seed = (uint64_t)seed;
  PGI_RETURN_IF_ERROR(validate_sampling(sp));
  options->max_tokens = n_new;
  options->stops.clear();
  if (args.has("--stop")) options->stops.push_back(args.str("--stop"));
  return Status::ok_status();
}

}  // namespace pginfer::cli
