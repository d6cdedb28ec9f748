// The freeze banner every status output leads with (cli/freeze.cpp): one line per active
// freeze, its text from the coordinator made safe for a terminal; nothing without freezes.
#include "cli/freeze.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace flotilla::cli {
namespace {

using nlohmann::json;

TEST(FreezeBannerTest, OneLinePerActiveFreeze) {
  const json freezes = json::array({{{"id", "freeze-1"},
                                     {"environment", nullptr},
                                     {"by", "alice"},
                                     {"since", "2026-12-05T11:00:00.000Z"},
                                     {"reason", "INC-1"}},
                                    {{"id", "freeze-2"},
                                     {"environment", "production"},
                                     {"by", "bob"},
                                     {"since", "2026-12-05T11:05:00.000Z"},
                                     {"reason", "INC-2\x1b[31m red"}}});
  const auto lines = freezeBanner(freezes);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "FROZEN: freeze-1 (the whole fleet) by alice since 2026-12-05T11:00:00.000Z: INC-1; "
            "new deployments are refused, running ones stop at their next step (`flotilla "
            "unfreeze` lifts it)");
  EXPECT_EQ(lines[1].rfind("FROZEN: freeze-2 (environment production) by bob since ", 0), 0u);
  EXPECT_NE(lines[1].find("`flotilla unfreeze --env production` lifts it"), std::string::npos);
  EXPECT_EQ(lines[1].find('\x1b'), std::string::npos) << lines[1];  // no terminal escapes
}

TEST(FreezeBannerTest, NothingWithoutFreezes) {
  EXPECT_TRUE(freezeBanner(json::array()).empty());
  EXPECT_TRUE(freezeBanner(json(nullptr)).empty());  // a coordinator older than freezes
  EXPECT_TRUE(freezeBanner(json::array({1, "x"})).empty());
}

}  // namespace
}  // namespace flotilla::cli
