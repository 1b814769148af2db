// tools/infer/cmd_synth.cpp: the subcommands that write model files: synth, quantize.
#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/synth.h"
#include "tools/infer/args.h"
#include "tools/infer/commands.h"

namespace pginfer::cli {

namespace {

int fail(const char* cmd, const std::string& message, int code) {
  std::fprintf(stderr, "infer %s: %s\n", cmd, message.c_str());
  return code;
}

}  // namespace

int cmd_synth(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"--shape", "--type", "--vocab", "-o", "--seed", "--threads"}, {})) {
    return fail("synth", args.error(), kExitUsage);
  }
  for (const char* required : {"--shape", "--type", "--vocab", "-o"}) {
    if (!args.has(required)) return fail("synth", std::string("missing ") + required, kExitUsage);
  }
  SynthOptions o;
  o.shape = args.str("--shape");
  o.vocab_path = args.str("--vocab");
  if (!parse_type_name(args.str("--type").c_str(), &o.type)) {
    return fail("synth", "unknown type \"" + args.str("--type") + "\" (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K)",
                kExitUsage);
  }
  int64_t seed = 0, threads = 0;
  if (!args.integer("--seed", 1, 0, INT64_MAX, &seed) || !args.integer("--threads", 0, 0, 1024, &threads)) {
    return fail("synth", args.error(), kExitUsage);
  }
  o.seed = (uint64_t)seed;
  o.threads = (int)threads;
  Status st = write_synthetic_model(o, args.str("-o"));
  if (!st.ok()) return fail("synth", st.message(), st.code() == StatusCode::InvalidArgument ? kExitUsage : kExitFailure);
  return kExitOk;
}

int cmd_quantize(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"--threads"}, {})) return fail("quantize", args.error(), kExitUsage);
  if (args.positional().size() != 3) return fail("quantize", "usage: infer quantize IN OUT TYPE", kExitUsage);
  TensorType type;
  if (!parse_type_name(args.positional()[2].c_str(), &type)) {
    return fail("quantize", "unknown type \"" + args.positional()[2] + "\"", kExitUsage);
  }
  int64_t threads = 0;
  if (!args.integer("--threads", 0, 0, 1024, &threads)) return fail("quantize", args.error(), kExitUsage);
  Status st = convert_model(args.positional()[0], args.positional()[1], type, (int)threads);
  if (!st.ok()) {
    return fail("quantize", st.message(), st.code() == StatusCode::InvalidArgument ? kExitUsage : kExitFailure);
  }
  return kExitOk;
}

}  // namespace pginfer::cli
