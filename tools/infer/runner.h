// tools/infer/runner.h: what the subcommands that run a model share: opening a model, a CPU backend and
// a session from the command line's flags, and reporting failures with the tool's exit codes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/status.h"
#include "tools/infer/args.h"

namespace pginfer::cli {

// Prints "infer <cmd>: <message>" to stderr and returns `code`.
int fail(const char* cmd, const std::string& message, int code);

// Prints the status's message and returns kExitUsage for InvalidArgument, kExitFailure otherwise.
int fail(const char* cmd, const Status& st);

// Everything a subcommand needs to run a model.
struct Runner {
  std::unique_ptr<Model> model;      // the weights (loaded by open_runner unless already set)
  std::unique_ptr<Backend> backend;  // the backend of --device, prepared for the model
  std::unique_ptr<Session> session;  // an empty session of the requested context
};

// Loads the model of -m (unless r->model is loaded already), the backend of --device (cpu, the default,
// with --threads threads; cuda; or auto: the GPU when one is usable, else the CPU), and a session of n_ctx
// positions (at most the model's training context).
Status open_runner(Args& args, int64_t n_ctx, Runner* r);

// The flags that shape generation, as `infer generate` and `infer chat` take them, into *options:
// -n (new tokens, default `default_n`), --temp, --seed, --top-k, --top-p, --min-p, --repeat-penalty,
// --frequency-penalty, --presence-penalty (validated) and --stop. InvalidArgument on a bad value.
Status generate_options_from_flags(Args& args, int64_t default_n, GenerateOptions* options);

}  // namespace pginfer::cli
