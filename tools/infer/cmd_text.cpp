// tools/infer/cmd_text.cpp: the subcommands between text and token ids: tokenize, detokenize.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
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

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2, {"-m"}, {"--no-bos", "--parse-special"})) return usage("tokenize", args.error());
  if (!args.has("-m")) return usage("tokenize", "missing -m MODEL");
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Vocab> vocab;
  Status st = open_vocab(args.str("-m"), &file, &vocab);
  if (!st.ok()) return fail("tokenize", st);
  const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
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
