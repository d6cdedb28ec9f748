#include "common/strings.hpp"

#include <gtest/gtest.h>

namespace flotilla::common {
namespace {

TEST(ReplaceAllTest, ReplacesEveryOccurrenceOnce) {
  EXPECT_EQ(replaceAll("/opt/{version}/bin --v {version}", "{version}", "2.0"),
            "/opt/2.0/bin --v 2.0");
  // A replacement holding the pattern is not expanded again.
  EXPECT_EQ(replaceAll("{x}{x}", "{x}", "{x}{x}"), "{x}{x}{x}{x}");
  EXPECT_EQ(replaceAll("abc", "", "z"), "abc");
  EXPECT_EQ(replaceAll("", "{x}", "z"), "");
}

}  // namespace
}  // namespace flotilla::common
