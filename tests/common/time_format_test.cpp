// Tests for common/time_format.cpp: the RFC 3339 form times are shown and taken in, and the
// Unix milliseconds they are stored as.
#include "common/time_format.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

// 2026-11-27T01:02:03.456Z
constexpr int64_t kSample = 1795741323456;

TEST(FormatRfc3339, MillisecondsInUtcWithAZ) {
  EXPECT_EQ(formatRfc3339(fromUnixMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(formatRfc3339(fromUnixMillis(kSample)), "2026-11-27T01:02:03.456Z");
  EXPECT_EQ(formatRfc3339(fromUnixMillis(1709208000000)), "2024-02-29T12:00:00.000Z");
  // As far as a system_clock time point reaches with room to spare.
  EXPECT_EQ(formatRfc3339(fromUnixMillis(4102444799999)), "2099-12-31T23:59:59.999Z");
}

TEST(FormatRfc3339, TimesBefore1970CountBackFromTheEpoch) {
  EXPECT_EQ(formatRfc3339(fromUnixMillis(-1)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(formatRfc3339(fromUnixMillis(-1000)), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(formatRfc3339(fromUnixMillis(-14182940000)), "1969-07-20T20:17:40.000Z");
  EXPECT_EQ(formatRfc3339(fromUnixMillis(-14182939999)), "1969-07-20T20:17:40.001Z");
}

TEST(FormatRfc3339, DropsWhatIsFinerThanAMillisecond) {
  const SystemTime t = fromUnixMillis(kSample) + std::chrono::microseconds(999);
  EXPECT_EQ(formatRfc3339(t), "2026-11-27T01:02:03.456Z");
  EXPECT_EQ(toUnixMillis(t), kSample);
}

TEST(UnixMillis, RoundTripBothWays) {
  for (int64_t ms : {int64_t{0}, int64_t{1}, int64_t{-1}, kSample, int64_t{-14182940000},
                     int64_t{4102444799999}}) {
    EXPECT_EQ(toUnixMillis(fromUnixMillis(ms)), ms);
  }
  const SystemTime now =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  EXPECT_EQ(fromUnixMillis(toUnixMillis(now)), now);
}

TEST(ParseRfc3339, ReadsWhatFormatWrites) {
  for (int64_t ms : {int64_t{0}, int64_t{-1}, kSample, int64_t{-14182939999},
                     int64_t{1709208000000}, int64_t{4102444799999}}) {
    const std::string text = formatRfc3339(fromUnixMillis(ms));
    EXPECT_EQ(parseRfc3339(text), ms) << text;
  }
}

TEST(ParseRfc3339, TheWholeFourDigitYearRange) {
  // Milliseconds, not a time point: no range narrower than the text's.
  EXPECT_EQ(parseRfc3339("9999-12-31T23:59:59.999Z"), 253402300799999);
  EXPECT_EQ(parseRfc3339("1969-07-20T20:17:40Z"), -14182940000);
}

TEST(ParseRfc3339, FractionsOfAnyLengthAreTruncatedToMilliseconds) {
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03Z"), kSample - 456);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.4Z"), kSample - 56);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.45Z"), kSample - 6);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.456Z"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.456999999Z"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.999999999999999Z"), kSample - 456 + 999);
}

TEST(ParseRfc3339, NumericOffsetsAreTakenToUtc) {
  EXPECT_EQ(parseRfc3339("2026-11-27T02:02:03.456+01:00"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-26T19:32:03.456-05:30"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.456+00:00"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-27T01:02:03.456-00:00"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-28T00:00:03.456+23:58"), kSample - 60 * 60 * 1000);
}

TEST(ParseRfc3339, LowerCaseTAndZAreTheSame) {
  EXPECT_EQ(parseRfc3339("2026-11-27t01:02:03.456z"), kSample);
  EXPECT_EQ(parseRfc3339("2026-11-27t01:02:03.456Z"), kSample);
}

TEST(ParseRfc3339, CalendarDaysAreChecked) {
  EXPECT_EQ(parseRfc3339("2024-02-29T12:00:00Z"), 1709208000000);  // a leap year
  EXPECT_EQ(parseRfc3339("2026-02-29T12:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-02-31T00:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-04-31T00:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-00-10T00:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-13-10T00:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-12-00T00:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-12-32T00:00:00Z"), std::nullopt);
  EXPECT_TRUE(parseRfc3339("2026-12-31T23:59:59Z").has_value());
}

TEST(ParseRfc3339, ClockFieldsAreChecked) {
  EXPECT_EQ(parseRfc3339("2026-11-27T24:00:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-11-27T23:60:00Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-11-27T23:59:61Z"), std::nullopt);
}

TEST(ParseRfc3339, ALeapSecondIsTheSecondAfter59) {
  // RFC 3339 allows second 60, and leap seconds come at the end of a UTC day.
  EXPECT_EQ(parseRfc3339("2016-12-31T23:59:60Z"), parseRfc3339("2017-01-01T00:00:00Z"));
  EXPECT_EQ(parseRfc3339("2016-12-31T23:59:60.500Z"), parseRfc3339("2017-01-01T00:00:00.500Z"));
  EXPECT_EQ(parseRfc3339("2017-01-01T00:59:60+01:00"), parseRfc3339("2017-01-01T00:00:00Z"));
  // Still a day of its month: not a way past the calendar check.
  EXPECT_EQ(parseRfc3339("2026-02-29T23:59:60Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2026-04-31T23:59:60Z"), std::nullopt);
}

TEST(ParseRfc3339, AnythingElseIsNotATime) {
  for (const char* bad : {
           "",
           "2026-11-27",
           "2026-11-27T01:02Z",
           "2026-11-27T01:02:03",                          // no zone
           "2026-11-27 01:02:03Z",                         // a space for the T
           "2026-11-27T01:02:03.Z",                        // an empty fraction
           "2026-11-27T01:02:03,456Z",                     // a comma for the point
           "2026-11-27T01:02:03.456ZZ",                    // something after the zone
           " 2026-11-27T01:02:03Z",                        // something before
           "2026-11-27T01:02:03Z ",                        //
           "2026-11-27T01:02:03+0100",                     // an offset without its colon
           "2026-11-27T01:02:03+01",                       // half an offset
           "2026-11-27T01:02:03+01:0",                     //
           "2026-11-27T01:02:03+24:00",                    // an offset out of range
           "2026-11-27T01:02:03+01:60",                    //
           "2026-11-27T01:02:03+01:00:00",                 //
           "26-11-27T01:02:03Z",                           // a two-digit year
           "+2026-11-27T01:02:03Z",                        //
           "2026/11/27T01:02:03Z",                         //
           "2026-1a-27T01:02:03Z",                         // letters for digits
           "2026-11-27T01:02:0xZ",                         //
           "-026-11-27T01:02:03Z",                         //
           "2026-11-27T01:02:03.1234567890123456789012Z",  // longer than 40 characters
           "1h",
           "1795741323456",
       }) {
    EXPECT_EQ(parseRfc3339(bad), std::nullopt) << '"' << bad << '"';
  }
}

}  // namespace
}  // namespace flotilla::common
