// engine/utf8.h: the UTF-8 facts the tokenizers share: sequence lengths, validation with replacement of
// invalid bytes, and encoding of code points.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pginfer {

// U+FFFD REPLACEMENT CHARACTER, what invalid input bytes become.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Bytes of the UTF-8 sequence that a lead byte announces (1 for ASCII, continuation and invalid bytes).
inline size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Length of the valid UTF-8 sequence at the start of `text` (shortest form, no surrogates, at most
// U+10FFFF), or 0 when the first byte does not start one.
size_t valid_utf8_prefix(std::string_view text);

// Whether all of `text` is valid UTF-8.
bool is_valid_utf8(std::string_view text);

// `text` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view text);

// Appends the UTF-8 encoding of code point `cp` (at most U+10FFFF) to *out.
void append_utf8(uint32_t cp, std::string* out);

}  // namespace pginfer
