// Tests for how user text appears in messages (common/user_text.cpp).
#include "common/user_text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flotilla::common {
namespace {

TEST(Quote, QuotesAndEscapes) {
  EXPECT_EQ(quote("checkout"), "\"checkout\"");
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quote(std::string("a\0b\n\x1f\x7f", 6)), "\"a\\x00b\\x0a\\x1f\\x7f\"");
  // Non-ASCII text is kept as it is: messages are UTF-8.
  EXPECT_EQ(quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(Quote, CutsLongTextOnACharacterBoundary) {
  const std::string exact(64, 'x');
  EXPECT_EQ(quote(exact), "\"" + exact + "\"");
  EXPECT_EQ(quote(exact + "y"), "\"" + exact + "\"...");
  // The 64-byte cut would fall inside the two-byte "é": it moves back before it.
  const std::string before(63, 'x');
  EXPECT_EQ(quote(before + "\xc3\xa9" + "z"), "\"" + before + "\"...");
}

TEST(PrintableMessage, EscapesEverythingButPrintableAscii) {
  EXPECT_EQ(printableMessage("unknown escape character: \xff"), "unknown escape character: \\xff");
  EXPECT_EQ(printableMessage("tab\there \"quoted\""), "tab\\x09here \"quoted\"");
  EXPECT_EQ(printableMessage("caf\xc3\xa9"), "caf\\xc3\\xa9");
}

}  // namespace
}  // namespace flotilla::common
