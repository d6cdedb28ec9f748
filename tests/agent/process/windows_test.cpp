// agent/process/windows.cpp: a set's window from two readings, and how it is described.
#include "agent/process/windows.hpp"

#include <gtest/gtest.h>

#include "tests/support/fake_step.hpp"

namespace flotilla::agent {
namespace {

using QuietStep = support::FakeStep;

TEST(WindowsTest, ReplicasSeenAtBothEndsMakeTheWindow) {
  QuietStep step;
  const auto t0 = std::chrono::steady_clock::now();
  SetReading before;
  SetReading after;
  before[18000] = Reading{std::nullopt, ProcStat{100, 1 << 20}, t0};
  after[18000] = Reading{std::nullopt, ProcStat{200, 2 << 20}, t0 + std::chrono::seconds(1)};
  before[18001] = Reading{};  // gone before the window ended: left out
  SetWindow w = windowOf(step, before, after);
  EXPECT_EQ(w.replicas, 0u);  // no scrape at either end
  ASSERT_TRUE(w.cpu);
  EXPECT_GT(*w.cpu, 0);
  EXPECT_EQ(w.rss_bytes, 2u << 20);
  const std::string text = describe("2.0.0", w);
  EXPECT_EQ(text.rfind("2.0.0: 0 requests", 0), 0u) << text;
  EXPECT_NE(text.find("rss 2.0 MiB"), std::string::npos) << text;
}

}  // namespace
}  // namespace flotilla::agent
