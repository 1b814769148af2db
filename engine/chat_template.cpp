// engine/chat_template.cpp: chat template families: detection from a template's text, and formatting.
//
// The detection rules and the output of each family follow llama.cpp's src/llama-chat.cpp (MIT
// licence), written here anew.
#include "engine/chat_template.h"

#include <cstdint>

#include "engine/json.h"

namespace pginfer {

namespace {

struct FamilyName {
  ChatTemplateKind kind;
  const char* name;
};

// Every family we format, by the name llama.cpp gives it.
constexpr FamilyName kFamilies[] = {
    {ChatTemplateKind::ChatMl, "chatml"},
    {ChatTemplateKind::Llama2, "llama2"},
    {ChatTemplateKind::Llama2Sys, "llama2-sys"},
    {ChatTemplateKind::Llama2SysBos, "llama2-sys-bos"},
    {ChatTemplateKind::Llama2SysStrip, "llama2-sys-strip"},
    {ChatTemplateKind::MistralV1, "mistral-v1"},
    {ChatTemplateKind::MistralV3, "mistral-v3"},
    {ChatTemplateKind::MistralV3Tekken, "mistral-v3-tekken"},
    {ChatTemplateKind::MistralV7, "mistral-v7"},
    {ChatTemplateKind::MistralV7Tekken, "mistral-v7-tekken"},
    {ChatTemplateKind::Phi3, "phi3"},
    {ChatTemplateKind::Phi4, "phi4"},
    {ChatTemplateKind::Falcon3, "falcon3"},
    {ChatTemplateKind::Zephyr, "zephyr"},
    {ChatTemplateKind::Monarch, "monarch"},
    {ChatTemplateKind::Gemma, "gemma"},
    {ChatTemplateKind::Orion, "orion"},
    {ChatTemplateKind::OpenChat, "openchat"},
    {ChatTemplateKind::Vicuna, "vicuna"},
    {ChatTemplateKind::VicunaOrca, "vicuna-orca"},
    {ChatTemplateKind::DeepSeek, "deepseek"},
    {ChatTemplateKind::DeepSeek2, "deepseek2"},
    {ChatTemplateKind::DeepSeek3, "deepseek3"},
    {ChatTemplateKind::CommandR, "command-r"},
    {ChatTemplateKind::Llama3, "llama3"},
    {ChatTemplateKind::ChatGlm3, "chatglm3"},
    {ChatTemplateKind::ChatGlm4, "chatglm4"},
    {ChatTemplateKind::GlmEdge, "glmedge"},
    {ChatTemplateKind::MiniCpm, "minicpm"},
    {ChatTemplateKind::Exaone3, "exaone3"},
    {ChatTemplateKind::Granite, "granite"},
    {ChatTemplateKind::Megrez, "megrez"},
    {ChatTemplateKind::Llama4, "llama4"},
};

// What detection found: one of our families, or a llama.cpp family we do not format (named), or nothing.
struct Detected {
  bool found = false;
  ChatTemplateKind kind = ChatTemplateKind::ChatMl;
  const char* other = nullptr;  // a llama.cpp family name we do not format
};

Detected ours(ChatTemplateKind kind) { return Detected{true, kind, nullptr}; }
Detected theirs(const char* name) { return Detected{false, ChatTemplateKind::ChatMl, name}; }

// llama.cpp's detection, rule by rule and in its order (the order matters: several families share
// markers such as <|assistant|>).
Detected detect(std::string_view t) {
  auto has = [t](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>")) return ours(ChatTemplateKind::Phi4);
    if (has("<end_of_utterance>")) return theirs("smolvlm");
    return ours(ChatTemplateKind::ChatMl);
  }
  if (t.substr(0, 7) == "mistral" || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return ours(ChatTemplateKind::MistralV7);
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return ours(ChatTemplateKind::MistralV1);
      if (has("\"[INST]\"")) return ours(ChatTemplateKind::MistralV3Tekken);
      return ours(ChatTemplateKind::MistralV3);
    }
    if (has("content.strip()")) return ours(ChatTemplateKind::Llama2SysStrip);
    if (has("bos_token + '[INST]")) return ours(ChatTemplateKind::Llama2SysBos);
    if (has("<<SYS>>")) return ours(ChatTemplateKind::Llama2Sys);
    return ours(ChatTemplateKind::Llama2);
  }
  if (has("<|assistant|>") && has("<|end|>")) return ours(ChatTemplateKind::Phi3);
  if (has("[gMASK]<sop>")) return ours(ChatTemplateKind::ChatGlm4);
  if (has("<|assistant|>") && has("<|user|>")) {
    return has("</s>") ? ours(ChatTemplateKind::Falcon3) : ours(ChatTemplateKind::GlmEdge);
  }
  if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return ours(ChatTemplateKind::GlmEdge);
  if (has("<|user|>") && has("<|endoftext|>")) return ours(ChatTemplateKind::Zephyr);
  if (has("bos_token + message['role']")) return ours(ChatTemplateKind::Monarch);
  if (has("<start_of_turn>")) return ours(ChatTemplateKind::Gemma);
  if (has("'\\n\\nAssistant: ' + eos_token")) return ours(ChatTemplateKind::Orion);
  if (has("GPT4 Correct ")) return ours(ChatTemplateKind::OpenChat);
  if (has("USER: ") && has("ASSISTANT: ")) {
    return has("SYSTEM: ") ? ours(ChatTemplateKind::VicunaOrca) : ours(ChatTemplateKind::Vicuna);
  }
  if (has("### Instruction:") && has("<|EOT|>")) return ours(ChatTemplateKind::DeepSeek);
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return ours(ChatTemplateKind::CommandR);
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ours(ChatTemplateKind::Llama3);
  if (has("[gMASK]sop")) return ours(ChatTemplateKind::ChatGlm3);
  if (has("<\xE7\x94\xA8\xE6\x88\xB7>")) return ours(ChatTemplateKind::MiniCpm);  // <用户>
  if (has("'Assistant: ' + message['content'] + eos_token")) return ours(ChatTemplateKind::DeepSeek2);
  // <｜Assistant｜>, <｜User｜>, <｜end▁of▁sentence｜> (fullwidth bars, U+2581 spaces)
  if (has("<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>") && has("<\xEF\xBD\x9C" "User\xEF\xBD\x9C>") &&
      has("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>")) {
    return ours(ChatTemplateKind::DeepSeek3);
  }
  if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) {
    return has("[|tool|]") ? theirs("exaone4") : ours(ChatTemplateKind::Exaone3);
  }
  if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) {
    return theirs("rwkv-world");
  }
  if (has("<|start_of_role|>")) return ours(ChatTemplateKind::Granite);
  if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]")) {
    return theirs("gigachat");
  }
  if (has("<|role_start|>")) return ours(ChatTemplateKind::Megrez);
  if (has(" \xD0\x90\xD1\x81\xD1\x81\xD0\xB8\xD1\x81\xD1\x82\xD0\xB5\xD0\xBD\xD1\x82:")) return theirs("yandex");
  if (has("<role>ASSISTANT</role>") && has("'HUMAN'")) return theirs("bailing");
  if (has("<|header_start|>") && has("<|header_end|>")) return ours(ChatTemplateKind::Llama4);
  if (has("<|endofuserprompt|>")) return theirs("dots1");
  if (has("<|startoftext|>") && has("<|extra_4|>")) return theirs("hunyuan-moe");
  if (has("<\xEF\xBD\x9Chy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "2\xEF\xBD\x9C>") &&
      has("<\xEF\xBD\x9Chy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "3\xEF\xBD\x9C>")) {
    return theirs("hunyuan-dense");
  }
  if (has("<|im_assistant|>assistant<|im_middle|>")) return theirs("kimi-k2");
  return Detected{};
}

std::string supported_list() {
  std::string r;
  for (const FamilyName& f : kFamilies) r += std::string(r.empty() ? "" : ", ") + f.name;
  return r;
}

// The first ~60 bytes of a template for a message: whole UTF-8 characters, control characters escaped.
std::string excerpt(std::string_view t) {
  constexpr size_t kMax = 60;
  size_t n = t.size() <= kMax ? t.size() : kMax;
  while (n < t.size() && n > 0 && ((uint8_t)t[n] & 0xC0) == 0x80) --n;  // do not cut a character
  std::string r;
  for (char c : t.substr(0, n)) {
    if (c == '\n') r += "\\n";
    else if (c == '\t') r += "\\t";
    else if (c == '"') r += "\\\"";
    else if ((uint8_t)c < 0x20 || c == 0x7F) r += '?';
    else r += c;
  }
  if (n < t.size()) r += "...";
  return r;
}

// Whitespace trimmed from both ends (ASCII whitespace, as llama.cpp's trim()).
std::string trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  size_t b = 0, e = s.size();
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// U+FF5C fullwidth vertical bar and U+2581 lower one eighth block, as DeepSeek's tokens spell them.
constexpr const char* kDeepSeekEos = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
constexpr const char* kDeepSeekUser = "<\xEF\xBD\x9C" "User\xEF\xBD\x9C>";
constexpr const char* kDeepSeekAssistant = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";

void format_mistral_v7(bool tekken, const std::vector<ChatMessage>& messages, std::string& o) {
  const char* sp = tekken ? "" : " ";
  for (const ChatMessage& m : messages) {
    if (m.role == "system") o += std::string("[SYSTEM_PROMPT]") + sp + m.content + "[/SYSTEM_PROMPT]";
    else if (m.role == "user") o += std::string("[INST]") + sp + m.content + "[/INST]";
    else o += sp + m.content + "</s>";
  }
}

void format_mistral_v1_v3(ChatTemplateKind kind, const std::vector<ChatMessage>& messages, std::string& o) {
  const std::string lead = kind == ChatTemplateKind::MistralV1 ? " " : "";
  const std::string trail = kind == ChatTemplateKind::MistralV3Tekken ? "" : " ";
  const bool trim_answers = kind == ChatTemplateKind::MistralV3;
  bool in_turn = false;
  for (const ChatMessage& m : messages) {
    if (!in_turn) {
      o += lead + "[INST]" + trail;
      in_turn = true;
    }
    if (m.role == "system") {
      o += m.content + "\n\n";
    } else if (m.role == "user") {
      o += m.content + lead + "[/INST]";
    } else {
      o += trail + (trim_answers ? trim(m.content) : m.content) + "</s>";
      in_turn = false;
    }
  }
}

void format_llama2(ChatTemplateKind kind, const std::vector<ChatMessage>& messages, std::string& o) {
  const bool system_block = kind != ChatTemplateKind::Llama2;
  const bool bos_in_history = kind == ChatTemplateKind::Llama2SysBos;
  const bool strip = kind == ChatTemplateKind::Llama2SysStrip;
  // The first [INST] goes without <s>: the tokenizer adds the BOS.
  o += "[INST] ";
  bool in_turn = true;
  for (const ChatMessage& m : messages) {
    const std::string content = strip ? trim(m.content) : m.content;
    if (!in_turn) {
      in_turn = true;
      o += bos_in_history ? "<s>[INST] " : "[INST] ";
    }
    if (m.role == "system") {
      // Without <<SYS>> support the system text still leads the first user message.
      o += system_block ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
    } else if (m.role == "user") {
      o += content + " [/INST]";
    } else {
      o += content + "</s>";
      in_turn = false;
    }
  }
}

void format_gemma(const std::vector<ChatMessage>& messages, bool gen, std::string& o) {
  // Gemma has no system role: the system text is merged into the next user message.
  std::string system;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += trim(m.content);
      continue;
    }
    const std::string role = m.role == "assistant" ? "model" : m.role;
    o += "<start_of_turn>" + role + "\n";
    if (!system.empty() && role != "model") {
      o += system + "\n\n";
      system.clear();
    }
    o += trim(m.content) + "<end_of_turn>\n";
  }
  if (gen) o += "<start_of_turn>model\n";
}

}  // namespace

const char* chat_template_name(ChatTemplateKind kind) {
  for (const FamilyName& f : kFamilies) {
    if (f.kind == kind) return f.name;
  }
  return "?";
}

std::vector<std::string> chat_template_names() {
  std::vector<std::string> r;
  for (const FamilyName& f : kFamilies) r.push_back(f.name);
  return r;
}

Status chat_template_by_name(std::string_view name, ChatTemplate* out) {
  for (const FamilyName& f : kFamilies) {
    if (name == f.name) {
      out->kind = f.kind;
      return Status::ok_status();
    }
  }
  return invalid_argument("unknown chat template \"" + excerpt(name) + "\"; the families are " + supported_list());
}

Status detect_chat_template(std::string_view template_text, ChatTemplate* out) {
  // A family name is accepted in place of a template, as llama.cpp does.
  if (chat_template_by_name(template_text, out).ok()) return Status::ok_status();
  const Detected d = detect(template_text);
  if (d.found) {
    out->kind = d.kind;
    return Status::ok_status();
  }
  if (d.other != nullptr) {
    return unsupported("chat template \"" + excerpt(template_text) + "\" is of llama.cpp's \"" + d.other +
                       "\" family, which is not supported; the supported families are " + supported_list());
  }
  return unsupported("unrecognised chat template \"" + excerpt(template_text) +
                     "\"; the supported families are " + supported_list());
}

Status model_chat_template(const GgufFile& file, ChatTemplate* out) {
  std::string text;
  Status err;
  if (!file.get_string("tokenizer.chat_template", &text, &err)) {
    if (!err.ok()) return err;
    return not_found("the model has no chat template (no tokenizer.chat_template metadata)");
  }
  return detect_chat_template(text, out);
}

Status apply_chat_template(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                           bool add_generation_prompt, std::string* out) {
  out->clear();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      return invalid_argument("message " + std::to_string(i) + " has role \"" + excerpt(r) +
                              "\"; the roles are system, user and assistant");
    }
  }
  const bool gen = add_generation_prompt;
  std::string o;
  switch (tmpl.kind) {
    case ChatTemplateKind::ChatMl:
      for (const ChatMessage& m : messages) o += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (gen) o += "<|im_start|>assistant\n";
      break;
    case ChatTemplateKind::MistralV7:
    case ChatTemplateKind::MistralV7Tekken:
      format_mistral_v7(tmpl.kind == ChatTemplateKind::MistralV7Tekken, messages, o);
      break;
    case ChatTemplateKind::MistralV1:
    case ChatTemplateKind::MistralV3:
    case ChatTemplateKind::MistralV3Tekken:
      format_mistral_v1_v3(tmpl.kind, messages, o);
      break;
    case ChatTemplateKind::Llama2:
    case ChatTemplateKind::Llama2Sys:
    case ChatTemplateKind::Llama2SysBos:
    case ChatTemplateKind::Llama2SysStrip:
      format_llama2(tmpl.kind, messages, o);
      break;
    case ChatTemplateKind::Phi3:
      for (const ChatMessage& m : messages) o += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      if (gen) o += "<|assistant|>\n";
      break;
    case ChatTemplateKind::Phi4:
      for (const ChatMessage& m : messages) o += "<|im_start|>" + m.role + "<|im_sep|>" + m.content + "<|im_end|>";
      if (gen) o += "<|im_start|>assistant<|im_sep|>";
      break;
    case ChatTemplateKind::Falcon3:
      for (const ChatMessage& m : messages) o += "<|" + m.role + "|>\n" + m.content + "\n";
      if (gen) o += "<|assistant|>\n";
      break;
    case ChatTemplateKind::Zephyr:
      for (const ChatMessage& m : messages) o += "<|" + m.role + "|>\n" + m.content + "<|endoftext|>\n";
      if (gen) o += "<|assistant|>\n";
      break;
    case ChatTemplateKind::Monarch:
      for (size_t i = 0; i < messages.size(); ++i) {
        o += (i == 0 ? "" : "<s>") + messages[i].role + "\n" + messages[i].content + "</s>\n";
      }
      if (gen) o += "<s>assistant\n";
      break;
    case ChatTemplateKind::Gemma:
      format_gemma(messages, gen, o);
      break;
    case ChatTemplateKind::Orion: {
      // No system role: the system text leads the next user message. The format has no generation
      // prompt of its own: each user turn already ends with "Assistant: </s>".
      std::string system;
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          system += m.content;
        } else if (m.role == "user") {
          o += "Human: ";
          if (!system.empty()) {
            o += system + "\n\n";
            system.clear();
          }
          o += m.content + "\n\nAssistant: </s>";
        } else {
          o += m.content + "</s>";
        }
      }
      break;
    }
    case ChatTemplateKind::OpenChat:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          o += m.content + "<|end_of_turn|>";
        } else {
          std::string role = m.role;
          role[0] = (char)(role[0] - 'a' + 'A');
          o += "GPT4 Correct " + role + ": " + m.content + "<|end_of_turn|>";
        }
      }
      if (gen) o += "GPT4 Correct Assistant:";
      break;
    case ChatTemplateKind::Vicuna:
    case ChatTemplateKind::VicunaOrca:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          o += tmpl.kind == ChatTemplateKind::VicunaOrca ? "SYSTEM: " + m.content + "\n" : m.content + "\n\n";
        } else if (m.role == "user") {
          o += "USER: " + m.content + "\n";
        } else {
          o += "ASSISTANT: " + m.content + "</s>\n";
        }
      }
      if (gen) o += "ASSISTANT:";
      break;
    case ChatTemplateKind::DeepSeek:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") o += m.content;
        else if (m.role == "user") o += "### Instruction:\n" + m.content + "\n";
        else o += "### Response:\n" + m.content + "\n<|EOT|>\n";
      }
      if (gen) o += "### Response:\n";
      break;
    case ChatTemplateKind::DeepSeek2:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") o += m.content + "\n\n";
        else if (m.role == "user") o += "User: " + m.content + "\n\n";
        else o += "Assistant: " + m.content + kDeepSeekEos;
      }
      if (gen) o += "Assistant:";
      break;
    case ChatTemplateKind::DeepSeek3:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") o += m.content + "\n\n";
        else if (m.role == "user") o += kDeepSeekUser + m.content;
        else o += kDeepSeekAssistant + m.content + kDeepSeekEos;
      }
      if (gen) o += kDeepSeekAssistant;
      break;
    case ChatTemplateKind::CommandR:
      for (const ChatMessage& m : messages) {
        const char* tok = m.role == "system" ? "<|SYSTEM_TOKEN|>"
                          : m.role == "user" ? "<|USER_TOKEN|>"
                                             : "<|CHATBOT_TOKEN|>";
        o += std::string("<|START_OF_TURN_TOKEN|>") + tok + trim(m.content) + "<|END_OF_TURN_TOKEN|>";
      }
      if (gen) o += "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>";
      break;
    case ChatTemplateKind::Llama3:
      for (const ChatMessage& m : messages) {
        o += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      }
      if (gen) o += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatTemplateKind::ChatGlm3:
      o += "[gMASK]sop";
      for (const ChatMessage& m : messages) o += "<|" + m.role + "|>\n " + m.content;
      if (gen) o += "<|assistant|>";
      break;
    case ChatTemplateKind::ChatGlm4:
      o += "[gMASK]<sop>";
      for (const ChatMessage& m : messages) o += "<|" + m.role + "|>\n" + m.content;
      if (gen) o += "<|assistant|>\n";
      break;
    case ChatTemplateKind::GlmEdge:
      for (const ChatMessage& m : messages) o += "<|" + m.role + "|>\n" + m.content;
      if (gen) o += "<|assistant|>";
      break;
    case ChatTemplateKind::MiniCpm:
      // No generation prompt: each user turn already ends with <AI>.
      for (const ChatMessage& m : messages) {
        if (m.role == "user") o += "<\xE7\x94\xA8\xE6\x88\xB7>" + trim(m.content) + "<AI>";  // <用户>
        else o += trim(m.content);
      }
      break;
    case ChatTemplateKind::Exaone3:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") o += "[|system|]" + trim(m.content) + "[|endofturn|]\n";
        else if (m.role == "user") o += "[|user|]" + trim(m.content) + "\n";
        else o += "[|assistant|]" + trim(m.content) + "[|endofturn|]\n";
      }
      if (gen) o += "[|assistant|]";
      break;
    case ChatTemplateKind::Granite:
      for (const ChatMessage& m : messages) {
        o += "<|start_of_role|>" + m.role + "<|end_of_role|>" + m.content + "<|end_of_text|>\n";
      }
      if (gen) o += "<|start_of_role|>assistant<|end_of_role|>";
      break;
    case ChatTemplateKind::Megrez:
      for (const ChatMessage& m : messages) {
        o += "<|role_start|>" + m.role + "<|role_end|>" + m.content + "<|turn_end|>";
      }
      if (gen) o += "<|role_start|>assistant<|role_end|>";
      break;
    case ChatTemplateKind::Llama4:
      for (const ChatMessage& m : messages) {
        o += "<|header_start|>" + m.role + "<|header_end|>\n\n" + trim(m.content) + "<|eot|>";
      }
      if (gen) o += "<|header_start|>assistant<|header_end|>\n\n";
      break;
    default:
      return internal_error("chat template family " + std::to_string((int)tmpl.kind) + " has no formatter");
  }
  *out = std::move(o);
  return Status::ok_status();
}

Status parse_chat_messages(std::string_view json, std::vector<ChatMessage>* out) {
  out->clear();
  JsonValue root;
  PGI_RETURN_IF_ERROR(parse_json(json, &root));
  if (root.type != JsonType::Array) {
    return invalid_argument(std::string("messages: expected a JSON array of {\"role\", \"content\"} objects, not ") +
                            (root.type == JsonType::Object ? "an " : "a ") + json_type_name(root.type));
  }
  if (root.array.empty()) return invalid_argument("messages: the array is empty");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < root.array.size(); ++i) {
    const JsonValue& m = root.array[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (m.type != JsonType::Object) {
      return invalid_argument(where + ": expected an object, not a " + std::string(json_type_name(m.type)));
    }
    for (const auto& [key, value] : m.object) {
      if (key != "role" && key != "content") {
        return invalid_argument(where + ": unknown key \"" + excerpt(key) + "\" (the keys are role and content)");
      }
    }
    const JsonValue* role = m.find("role");
    const JsonValue* content = m.find("content");
    if (role == nullptr || role->type != JsonType::String) {
      return invalid_argument(where + ": \"role\" must be a string");
    }
    if (content == nullptr || content->type != JsonType::String) {
      return invalid_argument(where + ": \"content\" must be a string");
    }
    if (role->string != "system" && role->string != "user" && role->string != "assistant") {
      return invalid_argument(where + ": role \"" + excerpt(role->string) +
                              "\" is not one of system, user and assistant");
    }
    messages.push_back(ChatMessage{role->string, content->string});
  }
  *out = std::move(messages);
  return Status::ok_status();
}

}  // namespace pginfer
