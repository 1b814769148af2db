// tools/infer/cmd_text.cpp: the subcommands between text and token ids: tokenize (one text, or a batch of
// NUL-separated texts), detokenize.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "tools/infer/args.h"
#include "tools/infer/commands.h"

namespace pginfer::cli {

namespace {

int fail(const char* cmd, const Status& st) {
  std::fprintf(stderr, "infer %s: %s\n", cmd, st.message().c_str());
  return st.code() == StatusCode::InvalidArgument ? kExitUsage : kExitFailure;
}

int usage(const char* cmd, const std::string& message) {
  std::fprintf(stderr, "infer %s: %s\n", cmd, message.c_str());
  return kExitUsage;
}

// Opens the vocabulary of a model or vocab-only GGUF.
Status open_vocab(const std::string& path, std::unique_ptr<GgufFile>* file, std::unique_ptr<Vocab>* vocab) {
  PGI_RETURN_IF_ERROR(GgufFile::open(path, file));
  return Vocab::load(**file, vocab);
}

// Batch mode (-0/--null): stdin holds texts each ended by a NUL byte (the last one's NUL is optional,
// as with xargs -0), and each gets one output line: its ids, or "error: MESSAGE" when that text is
// refused, so that one bad text does not end the batch. A vocabulary the tokenizer does not support
// (Unsupported) fails the whole command, since no text could be tokenized.
int tokenize_batch(const Vocab& vocab, const std::string& input, bool add_special, bool parse_special) {
  std::string out;
  std::vector<int32_t> ids;
  for (size_t start = 0; start < input.size();) {
    size_t end = input.find('\0', start);
    if (end == std::string::npos) end = input.size();
    const Status st = tokenize(vocab, std::string_view(input).substr(start, end - start), add_special, &ids,
                               parse_special);
    if (st.code() == StatusCode::Unsupported) return fail("tokenize", st);
    if (!st.ok()) {
      out += "error: ";
      for (char c : st.message()) out += (c == '\n' || c == '\r') ? ' ' : c;
    } else {
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ' ';
        out += std::to_string(ids[i]);
      }
    }
    out += '\n';
    start = end + 1;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailure;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"-m"}, {"--no-bos", "--parse-special", "--null"})) {
    return usage("tokenize", args.error());
  }
  if (!args.has("-m")) return usage("tokenize", "missing -m MODEL");
  // Args reads "-0" as a negative number, hence a positional argument; nothing else is one here.
  bool batch = args.has("--null");
  for (const std::string& p : args.positional()) {
    if (p != "-0") return usage("tokenize", "unexpected argument \"" + p + "\" (the text comes from stdin)");
    batch = true;
  }
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Vocab> vocab;
  Status st = open_vocab(args.str("-m"), &file, &vocab);
  if (!st.ok()) return fail("tokenize", st);
  const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (batch) {
    return tokenize_batch(*vocab, text, !args.has("--no-bos"), args.has("--parse-special"));
  }
  std::vector<int32_t> ids;
  st = tokenize(*vocab, text, !args.has("--no-bos"), &ids, args.has("--parse-special"));
  if (!st.ok()) return fail("tokenize", st);
  for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
  std::printf("\n");
  return kExitOk;
}

int cmd_detokenize(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"-m"}, {})) return usage("detokenize", args.error());
  if (!args.has("-m")) return usage("detokenize", "missing -m MODEL");
  std::vector<int32_t> ids;
  for (const std::string& p : args.positional()) {
    std::vector<int32_t> some;
    std::string err;
    if (!parse_ids(p, &some, &err)) return usage("detokenize", err);
    ids.insert(ids.end(), some.begin(), some.end());
  }
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Vocab> vocab;
  Status st = open_vocab(args.str("-m"), &file, &vocab);
  if (!st.ok()) return fail("detokenize", st);
  std::string text;
  st = detokenize(*vocab, ids, &text);
  if (!st.ok()) return fail("detokenize", st);
  std::printf("%s\n", text.c_str());
  return kExitOk;
}

}  // namespace pginfer::cli
