// engine/chat_template.h: chat templates: turning a list of messages (system/user/assistant) into the
// prompt text a model was trained on, natively (no Jinja engine).
//
// As llama.cpp does (src/llama-chat.cpp), a model's tokenizer.chat_template (a Jinja source) is not
// executed: its family is recognised from characteristic substrings, and each family is formatted by
// code. Detection follows llama.cpp's rules and their order, so that a template is given the same family
// llama.cpp gives it; a family llama.cpp knows but we do not format, and a template no rule recognises,
// are errors that name it (never a silent fallback). A family can also be chosen by name ("chatml",
// "llama3", ...), which overrides detection.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf.h"
#include "engine/status.h"

namespace pginfer {

// The template families we format (names as llama.cpp spells them, see chat_template_name()).
enum class ChatTemplateKind {
  ChatMl,           // "chatml": <|im_start|>role\n...<|im_end|>\n
  Llama2,           // "llama2": [INST] ... [/INST], system text folded into the first user turn
  Llama2Sys,        // "llama2-sys": with <<SYS>>...<</SYS>> for the system message
  Llama2SysBos,     // "llama2-sys-bos": also <s> before each later [INST]
  Llama2SysStrip,   // "llama2-sys-strip": also message contents trimmed
  MistralV1,        // "mistral-v1": " [INST] ... [/INST] answer</s>"
  MistralV3,        // "mistral-v3": "[INST] ...[/INST] answer</s>", answers trimmed
  MistralV3Tekken,  // "mistral-v3-tekken": "[INST]...[/INST]answer</s>"
  MistralV7,        // "mistral-v7": [SYSTEM_PROMPT] ...[/SYSTEM_PROMPT][INST] ...[/INST] answer</s>
  MistralV7Tekken,  // "mistral-v7-tekken": as v7 without the spaces
  Phi3,             // "phi3": <|role|>\n...<|end|>\n
  Phi4,             // "phi4": <|im_start|>role<|im_sep|>...<|im_end|>
  Falcon3,          // "falcon3": <|role|>\n...\n
  Zephyr,           // "zephyr": <|role|>\n...<|endoftext|>\n
  Monarch,          // "monarch": <s>role\n...</s>\n (no <s> before the first message)
  Gemma,            // "gemma": <start_of_turn>user|model\n...<end_of_turn>\n, system merged into user
  Orion,            // "orion": Human: ...\n\nAssistant: </s>...</s>
  OpenChat,         // "openchat": GPT4 Correct User: ...<|end_of_turn|>
  Vicuna,           // "vicuna": USER: ...\nASSISTANT: ...</s>\n
  VicunaOrca,       // "vicuna-orca": as vicuna with SYSTEM: for the system message
  DeepSeek,         // "deepseek": ### Instruction:\n...\n### Response:\n...\n<|EOT|>\n (deepseek-coder)
  DeepSeek2,        // "deepseek2": User: ...\n\nAssistant: ...<｜end▁of▁sentence｜>
  DeepSeek3,        // "deepseek3": <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜>
  CommandR,         // "command-r": <|START_OF_TURN_TOKEN|><|USER_TOKEN|>...<|END_OF_TURN_TOKEN|>
  Llama3,           // "llama3": <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  ChatGlm3,         // "chatglm3": [gMASK]sop<|role|>\n ...
  ChatGlm4,         // "chatglm4": [gMASK]<sop><|role|>\n...
  GlmEdge,          // "glmedge": <|role|>\n...
  MiniCpm,          // "minicpm": <用户>...<AI>...
  Exaone3,          // "exaone3": [|role|]...[|endofturn|]\n
  Granite,          // "granite": <|start_of_role|>role<|end_of_role|>...<|end_of_text|>\n
  Megrez,           // "megrez": <|role_start|>role<|role_end|>...<|turn_end|>
  Llama4,           // "llama4": <|header_start|>role<|header_end|>\n\n...<|eot|>
};

// A chosen template family.
struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::ChatMl;
};

// One message of a conversation.
struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;  // UTF-8 text
};

// The family of a model's tokenizer.chat_template `template_text` (or of a family name, as llama.cpp
// also accepts). A template no rule recognises is Unsupported, naming its first characters and the
// supported families; so is one llama.cpp recognises as a family we do not format.
Status detect_chat_template(std::string_view template_text, ChatTemplate* out);

// The family of the chat template in a model's metadata (tokenizer.chat_template). NotFound when the
// model has none; otherwise as detect_chat_template().
Status model_chat_template(const GgufFile& file, ChatTemplate* out);

// The family called `name` (one of chat_template_names()); InvalidArgument listing the names otherwise.
Status chat_template_by_name(std::string_view name, ChatTemplate* out);

// The name of a family ("chatml", "llama2-sys", ...).
const char* chat_template_name(ChatTemplateKind kind);

// Every family name we format, in a fixed order.
std::vector<std::string> chat_template_names();

// Formats `messages` with `tmpl` into *out; with add_generation_prompt the text ends with what opens
// the assistant's turn (for the families whose format has one). Roles other than system, user and
// assistant are InvalidArgument. The output never starts with a BOS token's text that the tokenizer
// adds itself.
Status apply_chat_template(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                           bool add_generation_prompt, std::string* out);

// Parses a JSON array of message objects, each {"role": STRING, "content": STRING} (no other keys),
// with at least one message and roles among system, user and assistant. Errors name the message.
Status parse_chat_messages(std::string_view json, std::vector<ChatMessage>* out);

}  // namespace pginfer
