// engine/pretokenizer.cpp: pre-tokenizer expressions by name, compiled with PCRE2.
#include "engine/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstring>
#include <initializer_list>

namespace pginfer {

namespace {

// The expressions of the pre-tokenizers, from the models' own tokenizer.json files as llama.cpp rewrites
// them (case-insensitive contractions spelled out, DeepSeek's classes kept as ranges).

// GPT-2 and most byte-level BPE models.
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama 3: contractions in any case, digits in groups of at most three, newlines kept with punctuation.
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM's letters: Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee and other cased scripts.
constexpr const char* kDeepseekLlmLetters =
    R"(\s?[)"
    R"(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C})"
    R"(\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5})"
    R"(\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B})"
    R"(\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45})"
    R"(\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4})"
    R"(\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB})"
    R"(\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115})"
    R"(\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139})"
    R"(\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
    R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB})"
    R"(\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943})"
    R"(]+)";
// CJK ideographs, the range U+0800..U+4E00 and Hangul, as DeepSeek groups them. llama.cpp matches these
// expressions with non-ASCII whitespace replaced by U+000B, so their literal ranges never take a space:
// the (?!...) excludes what that replacement hides.
constexpr const char* kDeepseekCjk =
    R"((?:(?![\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]))"
    R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}])+)";

// One pre-tokenizer: its names, expressions and flags.
struct Definition {
  std::initializer_list<const char*> names;
  std::initializer_list<const char*> regexes;
  bool ignore_merges;
  bool adds_bos;
};

const Definition kDefinitions[] = {
    {{"default"},
     {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"},
     false, false},
    {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "gigachat",
      "exaone4"},
     {kGpt2}, false, false},
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"}, {kLlama3}, true, true},
    {{"dbrx", "smaug-bpe", "chatglm-bpe", "glm4"}, {kLlama3}, false, false},
    {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"}, {kQwen2}, false, false},
    {{"deepseek-llm"},
     {"[\\r\\n]", kDeepseekLlmLetters,
      "\\s?(?:(?!\\x{3000})[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}])+",
      "\\s+$", kDeepseekCjk, "\\p{N}+"},
     false, false},
    {{"deepseek-coder"}, {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"}, false, false},
    {{"deepseek-v3"},
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
     false, false},
    {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false, false},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
     {R"(\p{N})", kGpt2}, false, false},
};

// llama.cpp's whitespace (Unicode's White_Space property), which \s and \S are rewritten to: PCRE2's own
// \s also takes U+180E, which Unicode no longer counts as a space.
constexpr std::string_view kWhitespaceItems =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// `pattern` with \s and \S spelled as explicit classes of kWhitespaceItems (inside a class, \s becomes
// the items themselves; the expressions never use \S inside a class).
std::string with_llama_whitespace(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhitespaceItems) : "[" + std::string(kWhitespaceItems) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhitespaceItems) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
    } else if (c == ']' && in_class) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

}  // namespace

// A compiled expression.
struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

PreTokenizer::~PreTokenizer() = default;

std::string PreTokenizer::supported_names() {
  std::string all;
  for (const Definition& d : kDefinitions) {
    for (const char* n : d.names) all += (all.empty() ? "" : ", ") + std::string(n);
  }
  return all;
}

Status PreTokenizer::create(std::string_view name, std::unique_ptr<PreTokenizer>* out) {
  const std::string_view wanted = name.empty() ? "default" : name;
  const Definition* def = nullptr;
  for (const Definition& d : kDefinitions) {
    for (const char* n : d.names) {
      if (wanted == n) def = &d;
    }
  }
  if (def == nullptr) {
    return unsupported("unsupported pre-tokenizer \"" + std::string(name) +
                       "\" (tokenizer.ggml.pre; supported: " + supported_names() + ")");
  }
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  p->name_ = std::string(wanted);
  p->ignore_merges_ = def->ignore_merges;
  p->adds_bos_ = def->adds_bos;
  for (const char* pattern : def->regexes) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    // UCP: \s, \p{..} and classes follow Unicode; DOLLAR_ENDONLY: "$" is the end of the piece only.
    const std::string expression = with_llama_whitespace(pattern);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(expression.c_str()), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK, &error,
                                     &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      return internal_error("pre-tokenizer \"" + p->name_ + "\": expression does not compile at offset " +
                            std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT (unsupported platform) matching still works
    auto regex = std::make_unique<Regex>();
    regex->code = code;
    p->regexes_.push_back(std::move(regex));
  }
  *out = std::move(p);
  return Status::ok_status();
}

namespace {

// Per-thread matching state: match data sized for one pair of offsets and a JIT stack that lets long
// runs (100,000 spaces) match without exhausting the default 32 KiB.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

}  // namespace

Status PreTokenizer::split(std::string_view text, std::vector<std::string_view>* words) const {
  thread_local MatchState state;
  if (state.data == nullptr || state.context == nullptr) return out_of_memory("pre-tokenizer: no memory to match");
  std::vector<std::string_view> pieces{text}, next;
  if (text.empty()) pieces.clear();
  for (const auto& regex : regexes_) {
    next.clear();
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t kept = 0;    // end of what has been emitted
      size_t offset = 0;  // where the next search starts
      while (offset <= piece.size()) {
        int rc = pcre2_match(regex->code, subject, piece.size(), offset, PCRE2_NO_UTF_CHECK, state.data,
                             state.context);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // fall back to the interpreter, which uses the heap
          rc = pcre2_match(regex->code, subject, piece.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                           state.data, state.context);
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message(rc, message, sizeof message);
          return internal_error(std::string("pre-tokenizer \"") + name_ +
                                "\": matching failed: " + reinterpret_cast<const char*>(message));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
        const size_t start = ov[0], end = ov[1];
        if (end == start) {  // an empty match produces no word; search again one character on
          if (start >= piece.size()) break;
          offset = start + 1;
          while (offset < piece.size() && ((unsigned char)piece[offset] & 0xC0) == 0x80) ++offset;
          continue;
        }
        if (start > kept) next.push_back(piece.substr(kept, start - kept));
        next.push_back(piece.substr(start, end - start));
        kept = offset = end;
      }
      if (kept < piece.size()) next.push_back(piece.substr(kept));
    }
    pieces.swap(next);
  }
  words->insert(words->end(), pieces.begin(), pieces.end());
  return Status::ok_status();
}

}  // namespace pginfer
