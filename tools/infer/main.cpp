// tools/infer/main.cpp: the `infer` command-line tool: dispatches to a subcommand.
#include <cstdio>
#include <cstring>

#include "tools/infer/args.h"
#include "tools/infer/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* usage;
};

const Command kCommands[] = {
    {"info", pginfer::cli::cmd_info, "infer info -m MODEL"},
    {"generate", pginfer::cli::cmd_generate,
     "infer generate -m MODEL (-p TEXT | --prompt-ids \"ID ID ...\") -n N [--temp T] [--seed S] [--top-k K] "
     "[--top-p P] [--min-p P] [--repeat-penalty R] [--frequency-penalty F] [--presence-penalty F] [--stop TEXT] "
     "[--ids] [--threads T] [--ctx N] [--device cpu|cuda|auto]"},
    {"chat", pginfer::cli::cmd_chat,
     "infer chat -m MODEL --messages '[{\"role\": \"user\", \"content\": \"...\"}]' [--template NAME] [-n N] "
     "[--temp T] [--seed S] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--frequency-penalty F] "
     "[--presence-penalty F] [--stop TEXT] [--threads T] [--ctx N]"},
    {"score", pginfer::cli::cmd_score, "infer score -m MODEL --ids \"ID ID ...\" --json [--threads T] [--device cpu|cuda|auto]"},
    {"bench", pginfer::cli::cmd_bench, "infer bench -m MODEL --prompt N --gen N [--threads T] [--device cpu|cuda|auto] [--json] [--profile]"},
    {"tokenize", pginfer::cli::cmd_tokenize,
     "infer tokenize -m MODEL [--no-bos] [--parse-special] [-0|--null] < TEXT   (-0: texts separated by NUL "
     "bytes, one line of ids each)"},
    {"detokenize", pginfer::cli::cmd_detokenize, "infer detokenize -m MODEL ID..."},
    {"synth", pginfer::cli::cmd_synth,
     "infer synth --shape NAME --type TYPE --vocab VOCAB.gguf -o OUT.gguf [--seed S] [--threads T]"},
    {"quantize", pginfer::cli::cmd_quantize, "infer quantize IN.gguf OUT.gguf TYPE [--threads T]"},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %s\n", c.usage);
  std::fprintf(out, "types: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? pginfer::cli::kExitUsage : pginfer::cli::kExitOk;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.run(argc, argv);
  }
  std::fprintf(stderr, "infer: unknown command \"%s\"\n", argv[1]);
  print_usage(stderr);
  return pginfer::cli::kExitUsage;
}
