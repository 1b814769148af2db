// tools/infer/cmd_chat.cpp: `infer chat`: formats a conversation with the model's chat template and
// prints the assistant's reply.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/chat_prompt.h"
#include "engine/chat_template.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "tools/infer/args.h"
#include "tools/infer/commands.h"
#include "tools/infer/runner.h"

namespace pginfer::cli {

namespace {

// The families, comma-separated, for messages that suggest --template.
std::string family_list() {
  std::string r;
  for (const std::string& n : chat_template_names()) r += (r.empty() ? "" : ", ") + n;
  return r;
}

}  // namespace

int cmd_chat(int argc, char** argv) {
  Args args;
  if (!args.parse(argc, argv, 2,
                  {"-m", "--messages", "--template", "-n", "--temp", "--seed", "--threads", "--ctx", "--top-k",
                   "--top-p", "--min-p", "--repeat-penalty", "--frequency-penalty", "--presence-penalty", "--stop"},
                  {})) {
    return fail("chat", args.error(), kExitUsage);
  }
  if (!args.has("-m")) return fail("chat", "missing -m MODEL", kExitUsage);
  if (!args.has("--messages")) {
    return fail("chat", "missing --messages '[{\"role\": \"user\", \"content\": \"...\"}, ...]'", kExitUsage);
  }
  // Everything the command line alone decides is checked before the model is loaded.
  std::vector<ChatMessage> messages;
  Status st = parse_chat_messages(args.str("--messages"), &messages);
  if (!st.ok()) return fail("chat", "--messages: " + st.message(), kExitUsage);
  ChatTemplate tmpl;
  const bool override_template = args.has("--template");
  if (override_template) {
    st = chat_template_by_name(args.str("--template"), &tmpl);
    if (!st.ok()) return fail("chat", st);
  }
  GenerateOptions options;
  st = generate_options_from_flags(args, 128, &options);
  if (!st.ok()) return fail("chat", st);
  int64_t n_ctx = 0;
  if (!args.integer("--ctx", 0, 0, 1 << 24, &n_ctx)) return fail("chat", args.error(), kExitUsage);

  Runner r;
  std::unique_ptr<Vocab> vocab;
  st = Model::load(args.str("-m"), &r.model);
  if (st.ok()) st = Vocab::load(r.model->file(), &vocab);
  if (!st.ok()) return fail("chat", st);
  if (!override_template) {
    st = model_chat_template(r.model->file(), &tmpl);
    if (st.code() == StatusCode::NotFound) {
      return fail("chat", st.message() + "; choose a format with --template NAME, one of " + family_list(),
                  kExitFailure);
    }
    if (!st.ok()) return fail("chat", st.message() + "; choose a format with --template NAME", kExitFailure);
  }
  std::vector<int32_t> prompt;
  st = chat_prompt_ids(*vocab, tmpl, messages, &prompt);
  if (!st.ok()) return fail("chat", st);
  if (n_ctx == 0) n_ctx = (int64_t)prompt.size() + options.max_tokens;
  st = open_runner(args, n_ctx, &r);
  if (!st.ok()) return fail("chat", st);
  GenerateResult result;
  st = generate(*r.session, vocab.get(), prompt, options, &result);
  if (!st.ok()) return fail("chat", st);
  std::printf("%s\n", result.text.c_str());
  return kExitOk;
}

}  // namespace pginfer::cli
