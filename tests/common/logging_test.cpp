// Tests for common/logging.cpp: loggable() makes peer text safe for one log line.
#include "common/logging.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flotilla::common {
namespace {

TEST(LoggableTest, PlainTextIsUnchanged) {
  EXPECT_EQ(loggable("stage prod-eu-1/apply started"), "stage prod-eu-1/apply started");
  EXPECT_EQ(loggable(""), "");
}

TEST(LoggableTest, NewlinesCannotForgeALine) {
  std::string forged = "ok\n2026-01-01T00:00:00.000Z info [coordinator] agent admin enrolled";
  std::string out = loggable(forged, 1000);
  EXPECT_EQ(out.find('\n'), std::string::npos);
  EXPECT_EQ(out, "ok\\n2026-01-01T00:00:00.000Z info [coordinator] agent admin enrolled");
  EXPECT_EQ(loggable("a\r\tb"), "a\\r\\tb");
}

TEST(LoggableTest, ControlCharactersAndDelAreHexEscaped) {
  EXPECT_EQ(loggable(std::string("\x1b[31mred\x1b[0m")), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(loggable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(loggable("\x7f"), "\\x7f");
  EXPECT_EQ(loggable("\x01\x1f"), "\\x01\\x1f");
}

TEST(LoggableTest, BackslashIsEscapedSoEscapesAreUnambiguous) {
  // A peer sending the two characters \n must not look like an escaped newline.
  EXPECT_EQ(loggable("a\\nb"), "a\\\\nb");
  EXPECT_NE(loggable("a\\nb"), loggable("a\nb"));
}

TEST(LoggableTest, ValidUtf8IsKept) {
  EXPECT_EQ(loggable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80");
}

TEST(LoggableTest, InvalidUtf8IsHexEscaped) {
  EXPECT_EQ(loggable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(loggable("\xc3"), "\\xc3");                 // truncated sequence
  EXPECT_EQ(loggable("\xc0\xaf"), "\\xc0\\xaf");        // overlong '/'
  EXPECT_EQ(loggable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate
  EXPECT_EQ(loggable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
}

TEST(LoggableTest, UnicodeLineAndBidiControlsAreEscaped) {
  EXPECT_EQ(loggable("a\xe2\x80\xa8" "b"), "a\\u{2028}b");   // line separator
  EXPECT_EQ(loggable("\xe2\x80\xae" "txt"), "\\u{202e}txt");  // right-to-left override
  EXPECT_EQ(loggable("\xc2\x85"), "\\u{0085}");              // C1 next line
}

TEST(LoggableTest, LongTextIsCutAndSaysHowMuchWasLeft) {
  std::string text(1000, 'x');
  std::string out = loggable(text, 200);
  EXPECT_EQ(out, std::string(200, 'x') + "...(+800 bytes)");
  EXPECT_EQ(loggable(std::string(200, 'y'), 200), std::string(200, 'y'));
}

TEST(LoggableTest, CutNeverSplitsAnEscapeOrACharacter) {
  // 199 bytes, then an escape of 4: it does not fit in 200, so it is left out whole.
  std::string text = std::string(199, 'a') + "\x1b" + "z";
  EXPECT_EQ(loggable(text, 200), std::string(199, 'a') + "...(+2 bytes)");
  std::string euro = std::string(199, 'a') + "\xe2\x82\xac";
  EXPECT_EQ(loggable(euro, 200), std::string(199, 'a') + "...(+3 bytes)");
}

TEST(LoggableTest, HugeInputStaysBounded) {
  std::string flood(1 << 20, '\n');
  EXPECT_LE(loggable(flood).size(), 200u + 32u);
}

}  // namespace
}  // namespace flotilla::common
