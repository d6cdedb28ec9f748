// Tests for the rules of names, versions, labels and durations (common/rules.cpp).
#include "common/rules.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesSequencesOfUnits) {
  const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
      {"300s", 300s}, {"5m", 5min}, {"1h30m", 90min},         {"250ms", 250ms},
      {"2h", 2h},     {"0s", 0ms},  {"1h2m3s4ms", 3723004ms}, {"90s", 90s}};
  for (const auto& [text, expected] : cases) {
    auto parsed = parseDuration(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().toString();
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(Duration, RefusesBadText) {
  for (const std::string text : {"", "300", "5", "m", "-5m", "5M", "1.5h", "5m5m", "30s1m",
                                 "1h 30m", " 5m", "5m ", "5d", "5mss", "9999999999999h", "ms"}) {
    auto parsed = parseDuration(text);
    EXPECT_FALSE(parsed.ok()) << "\"" << text << "\" was accepted";
    if (!parsed.ok()) {
      EXPECT_TRUE(parsed.status().isInvalidArgument());
    }
  }
  EXPECT_NE(parseDuration("300").status().message().find("unit is required"), std::string::npos);
}

TEST(Duration, FormatsTheShortestFormAndRoundTrips) {
  EXPECT_EQ(formatDuration(5min), "5m");
  EXPECT_EQ(formatDuration(90min), "1h30m");
  EXPECT_EQ(formatDuration(250ms), "250ms");
  EXPECT_EQ(formatDuration(90s), "1m30s");
  EXPECT_EQ(formatDuration(300s), "5m");
  EXPECT_EQ(formatDuration(0ms), "0s");
  EXPECT_EQ(formatDuration(1500ms), "1s500ms");
  EXPECT_EQ(formatDuration(-90s), "-1m30s");
  for (int64_t ms :
       {1LL, 999LL, 1000LL, 59999LL, 60000LL, 3600000LL, 3723004LL, 86400000LL, 123456789012LL}) {
    const std::chrono::milliseconds d(ms);
    auto parsed = parseDuration(formatDuration(d));
    ASSERT_TRUE(parsed.ok()) << formatDuration(d);
    EXPECT_EQ(*parsed, d);
  }
  for (const std::string text : {"5m", "1h30m", "250ms", "1m30s", "2h", "1h2m3s4ms"}) {
    EXPECT_EQ(formatDuration(*parseDuration(text)), text);
  }
}

TEST(Names, ValidNames) {
  for (const std::string& name :
       std::vector<std::string>{"a", "checkout", "prod-eu-1", "0", std::string(63, 'x')}) {
    EXPECT_TRUE(isValidName(name)) << name;
  }
  for (const std::string& name :
       std::vector<std::string>{"", "-a", "a-", "Prod", "a_b", "a.b", "a b", std::string(64, 'x'),
                                std::string("a\0b", 3)}) {
    EXPECT_FALSE(isValidName(name)) << name;
  }
}

TEST(Versions, OddButLegalVersionsAreAccepted) {
  for (const std::string& version : std::vector<std::string>{
           "1", "1.4.2", "1.10", "2026.12.04_rc-1+build.7", "v2.0.0-beta.1", "1.0.0+20130313144700",
           "_build", "+meta", "A_B.c+d-e", std::string(128, '7'), "9" + std::string(127, '-')}) {
    EXPECT_TRUE(isValidVersion(version)) << version;
  }
}

TEST(Versions, UnsafeOrMalformedVersionsAreRefused) {
  for (const std::string& version : std::vector<std::string>{"",
                                                             "1.0/../x",
                                                             "$(id)",
                                                             "-1",
                                                             ".1",
                                                             "..",
                                                             "a/b",
                                                             "1.4 beta",
                                                             " 1",
                                                             "1\t",
                                                             "1;rm",
                                                             "a:b",
                                                             "a\"b",
                                                             "a'b",
                                                             "`id`",
                                                             "1,2",
                                                             "a=b",
                                                             "a@b",
                                                             "a~b",
                                                             "caf\xc3\xa9",
                                                             std::string(129, '7'),
                                                             std::string("1\0", 2),
                                                             "1\n"}) {
    EXPECT_FALSE(isValidVersion(version)) << version;
  }
}

TEST(Versions, TheRuleTextNamesTheRule) {
  EXPECT_STREQ(kVersionRule,
               "use 1 to 128 characters from [A-Za-z0-9._+-], not starting with '.' or '-'");
  EXPECT_STREQ(kNameRule, "use 1 to 63 characters from [a-z0-9-], not starting or ending with '-'");
}

// What an agent may carry (`--label KEY=VALUE`, checked by the coordinator at registration).
TEST(Labels, AgentLabels) {
  for (const std::string& key : std::vector<std::string>{"environment", "Env", "k8s.io/zone",
                                                         "a_b-c", std::string(63, 'k')}) {
    EXPECT_TRUE(isValidLabelKey(key)) << key;
  }
  for (const std::string& key :
       std::vector<std::string>{"", "a b", "a=b", "a:b", "caf\xc3\xa9", std::string(64, 'k')}) {
    EXPECT_FALSE(isValidLabelKey(key)) << key;
  }
  for (const std::string& value :
       std::vector<std::string>{"", "production", "eu-west-1", "a=b:c/d", std::string(128, 'v')}) {
    EXPECT_TRUE(isValidLabelValue(value)) << value;
  }
  for (const std::string& value :
       std::vector<std::string>{"a b", "tab\there", "caf\xc3\xa9", "\x7f", std::string(129, 'v')}) {
    EXPECT_FALSE(isValidLabelValue(value)) << value;
  }
}

// What a plan's wave selector may name: the rule differs from the agents' (see rules.hpp).
TEST(Labels, SelectorLabels) {
  for (const std::string& key :
       std::vector<std::string>{"environment", "k8s.io/zone", "a_b-c", std::string(63, 'k')}) {
    EXPECT_TRUE(isValidSelectorKey(key)) << key;
  }
  for (const std::string& key : std::vector<std::string>{"", "Env", "a b", std::string(64, 'k')}) {
    EXPECT_FALSE(isValidSelectorKey(key)) << key;
  }
  for (const std::string& value :
       std::vector<std::string>{"production", "x y", "a=b", std::string(63, 'v')}) {
    EXPECT_TRUE(isValidSelectorValue(value)) << value;
  }
  for (const std::string& value :
       std::vector<std::string>{"", "caf\xc3\xa9", "tab\there", std::string(64, 'v')}) {
    EXPECT_FALSE(isValidSelectorValue(value)) << value;
  }
}

TEST(HttpUrls, OnlyHttpAndHttpsWithoutSpacesAndBounded) {
  for (const std::string& url :
       std::vector<std::string>{"http://a", "https://example.com/notes/1.4.2?x=1#y",
                                "https://" + std::string(2040, 'a')}) {
    EXPECT_TRUE(isValidHttpUrl(url)) << url;
  }
  for (const std::string& url : std::vector<std::string>{
           "", "https://", "ftp://a", "javascript:alert(1)", "HTTPS://a", "https://a b",
           "https://a\nb", "https://caf\xc3\xa9", "https://" + std::string(2041, 'a')}) {
    EXPECT_FALSE(isValidHttpUrl(url)) << url;
  }
}

TEST(FreeText, Utf8TextWithLineBreaksWithinItsBound) {
  EXPECT_TRUE(checkFreeText("", "x", 10).ok());
  EXPECT_TRUE(checkFreeText("line one\n\tline two\r\n", "x", 100).ok());
  EXPECT_TRUE(checkFreeText("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80", "x", 100).ok());
  EXPECT_TRUE(checkFreeText(std::string(10, 'a'), "x", 10).ok());
  const Status long_text = checkFreeText(std::string(11, 'a'), "the note", 10);
  EXPECT_TRUE(long_text.isInvalidArgument());
  EXPECT_EQ(long_text.message(), "the note is 11 bytes; at most 10");
  for (const std::string& bad : std::vector<std::string>{
           std::string("nul\0", 4), "esc \x1b[31m", "del \x7f", "bad \xff", "cut \xc3",
           "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "c1 \xc2\x9b", "big \xf4\x90\x80\x80"}) {
    EXPECT_TRUE(checkFreeText(bad, "x", 100).isInvalidArgument()) << bad;
  }
}

}  // namespace
}  // namespace flotilla::common
