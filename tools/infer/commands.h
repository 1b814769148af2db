// tools/infer/commands.h: the subcommands of `infer`, each a function of (argc, argv) returning an exit code.
#pragma once

namespace pginfer::cli {

// `infer info -m MODEL`
int cmd_info(int argc, char** argv);
// `infer generate -m MODEL (-p TEXT | --prompt-ids IDS) -n N [--temp T] [--seed S] [--ids]`
int cmd_generate(int argc, char** argv);
// `infer chat -m MODEL --messages JSON [--template NAME] [-n N] [sampling flags as generate]`
int cmd_chat(int argc, char** argv);
// `infer score -m MODEL --ids IDS --json`
int cmd_score(int argc, char** argv);
// `infer bench -m MODEL --prompt N --gen N [--threads T] --json`
int cmd_bench(int argc, char** argv);
// `infer tokenize -m MODEL [--no-bos] [--parse-special]` (text on stdin)
int cmd_tokenize(int argc, char** argv);
// `infer detokenize -m MODEL ID...`
int cmd_detokenize(int argc, char** argv);
// `infer synth --shape NAME --type TYPE --vocab VOCAB.gguf -o OUT.gguf [--seed S]`
int cmd_synth(int argc, char** argv);
// `infer quantize IN OUT TYPE`
int cmd_quantize(int argc, char** argv);

}  // namespace pginfer::cli
