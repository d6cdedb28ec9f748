// Backoff: waits double up to the cap, each drawn from the upper half of its bound; reset
// starts over; agents seeded differently do not retry in step.
#include "common/backoff.hpp"

#include <gtest/gtest.h>

#include <set>

namespace flotilla::common {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, WaitsDoubleUpToTheCapEachInTheUpperHalfOfItsBound) {
  Backoff b(milliseconds(2000), milliseconds(16000), 7);
  const int64_t bounds[] = {2000, 4000, 8000, 16000, 16000, 16000};
  for (int64_t bound : bounds) {
    EXPECT_EQ(b.bound().count(), bound);
    const int64_t wait = b.next().count();
    EXPECT_GE(wait, bound / 2);
    EXPECT_LE(wait, bound);
  }
}

TEST(BackoffTest, ResetStartsOver) {
  Backoff b(milliseconds(500), milliseconds(30000), 1);
  for (int i = 0; i < 10; ++i) b.next();
  EXPECT_EQ(b.bound().count(), 30000);
  b.reset();
  EXPECT_EQ(b.bound().count(), 500);
  EXPECT_LE(b.next().count(), 500);
}

TEST(BackoffTest, DifferentSeedsSpreadTheRetries) {
  std::set<int64_t> first_waits;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    Backoff b(milliseconds(2000), milliseconds(30000), seed);
    first_waits.insert(b.next().count());
  }
  // 100 agents over a 1,000 ms window: nearly all at different moments.
  EXPECT_GT(first_waits.size(), 80u);
}

TEST(BackoffTest, ACapBelowTheFirstWaitIsTheFirstWait) {
  Backoff b(milliseconds(1000), milliseconds(10), 3);
  b.next();
  EXPECT_EQ(b.bound().count(), 1000);
}

}  // namespace
}  // namespace flotilla::common
