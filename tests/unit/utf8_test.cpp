// tests/unit/utf8_test.cpp: UTF-8 validation and repair (engine/utf8.h).
#include <gtest/gtest.h>

#include "engine/utf8.h"

namespace pginfer {
namespace {

TEST(Utf8, ValidatesShortestFormsOnly) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\xA6\x99 \xF4\x8F\xBF\xBF"));  // é 中 🦙 U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\x80"));              // a lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xE4\xB8"));          // cut short
  EXPECT_FALSE(is_valid_utf8("\xD4 "));             // a lead byte followed by a space
}

TEST(Utf8, ReplacesEachInvalidByte) {
  EXPECT_EQ(replace_invalid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(replace_invalid_utf8("\xE4\xB8"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(replace_invalid_utf8("\xD4 x \xE4\xB8\xAD"), "\xEF\xBF\xBD x \xE4\xB8\xAD");
  EXPECT_TRUE(is_valid_utf8(replace_invalid_utf8("\xED\xA0\x80\xC0\xAF\x80\xF4\x90\x80\x80")));
}

TEST(Utf8, EncodesCodePoints) {
  std::string s;
  for (uint32_t cp : {0x41u, 0xE9u, 0x4E2Du, 0x1F999u}) append_utf8(cp, &s);
  EXPECT_EQ(s, "A\xC3\xA9\xE4\xB8\xAD\xF0\x9F\xA6\x99");
}

}  // namespace
}  // namespace pginfer
