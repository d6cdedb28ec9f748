// agent/proc_stat.cpp: /proc readings of real processes and of hostile stat lines.
#include "agent/proc_stat.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace flotilla::agent {
namespace {

using std::chrono::seconds;

TEST(ProcTest, ReadsOwnProcess) {
  auto first = readProcStat(::getpid());
  ASSERT_TRUE(first.ok()) << first.status().toString();
  EXPECT_GT(first->rss_bytes, 0u);
  EXPECT_GT(first->ticks_per_second, 0);

  // Burn CPU until the tick counter moves (a tick is usually 10 ms), bounded by wall time.
  const auto start = std::chrono::steady_clock::now();
  ProcStat later = *first;
  volatile uint64_t sink = 0;
  while (later.cpu_ticks == first->cpu_ticks &&
         std::chrono::steady_clock::now() - start < seconds(5)) {
    for (int i = 0; i < 1'000'000; ++i) sink = sink + static_cast<uint64_t>(i);
    auto again = readProcStat(::getpid());
    ASSERT_TRUE(again.ok());
    later = *again;
  }
  const auto wall = std::chrono::steady_clock::now() - start;
  EXPECT_GT(later.cpu_ticks, first->cpu_ticks);
  const double share = cpuShare(*first, later, wall);
  EXPECT_GT(share, 0);
  // One thread cannot use more than one core. Ticks are coarse: each end of the window may be
  // off by one tick, so compare tick counts (a share from a 3 ms window can read 3x).
  const double wall_ticks =
      std::chrono::duration<double>(wall).count() * static_cast<double>(later.ticks_per_second);
  EXPECT_LE(static_cast<double>(later.cpu_ticks - first->cpu_ticks), wall_ticks + 2);

  auto total = totalMemoryBytes();
  ASSERT_TRUE(total.ok()) << total.status().toString();
  EXPECT_GT(*total, later.rss_bytes);
  const double mem = memoryShare(later, *total);
  EXPECT_GT(mem, 0);
  EXPECT_LT(mem, 1);
}

TEST(ProcTest, MissingProcessIsNotFound) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  auto gone = readProcStat(child);
  EXPECT_TRUE(!gone.ok() && gone.status().isNotFound()) << gone.status().toString();
  auto invalid = readProcStat(0);
  EXPECT_TRUE(!invalid.ok() && invalid.status().isInvalidArgument());
}

TEST(ProcTest, ParsesStatWithHostileCommandNames) {
  // comm "a) (b c)": spaces and parentheses; fields are counted from the last ')'.
  const std::string stat =
      "1234 (a) (b c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 "
      "10000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  auto s = parseProcStat(stat, 4096, 100);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  EXPECT_EQ(s->cpu_ticks, 300u);
  EXPECT_EQ(s->rss_bytes, 300u * 4096);
  EXPECT_EQ(s->ticks_per_second, 100);

  EXPECT_TRUE(parseProcStat("1234 (x S 1 2", 4096, 100).status().isCorruption());
  EXPECT_TRUE(parseProcStat("1234 (x) S 1 2 3", 4096, 100).status().isCorruption());
  EXPECT_TRUE(
      parseProcStat("1234 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 50 0 0 20 0 1 0 1 1 300", 4096, 100)
          .status()
          .isCorruption());
  EXPECT_TRUE(parseProcStat("", 4096, 100).status().isCorruption());
}

TEST(ProcTest, CpuShareArithmetic) {
  ProcStat before{.cpu_ticks = 1000, .rss_bytes = 0, .ticks_per_second = 100};
  ProcStat after{.cpu_ticks = 1150, .rss_bytes = 0, .ticks_per_second = 100};
  EXPECT_DOUBLE_EQ(cpuShare(before, after, seconds(2)), 0.75);  // 1.5 s of CPU in 2 s
  EXPECT_DOUBLE_EQ(cpuShare(before, after, seconds(1)), 1.5);   // more than one core
  EXPECT_EQ(cpuShare(after, before, seconds(1)), 0);            // PID reused
  EXPECT_EQ(cpuShare(before, after, seconds(0)), 0);
  EXPECT_EQ(memoryShare(ProcStat{.cpu_ticks = 0, .rss_bytes = 50, .ticks_per_second = 100}, 0), 0);
}

TEST(ProcTest, ParsesMemTotal) {
  auto total = parseMemTotal("MemTotal:       16314088 kB\nMemFree:         1234 kB\n");
  ASSERT_TRUE(total.ok());
  EXPECT_EQ(*total, 16314088ull * 1024);
  EXPECT_TRUE(parseMemTotal("MemFree: 1 kB\n").status().isCorruption());
  EXPECT_TRUE(parseMemTotal("MemTotal: lots kB\n").status().isCorruption());
  EXPECT_TRUE(parseMemTotal("MemTotal: 99999999999999999999 kB\n").status().isCorruption());
  EXPECT_TRUE(parseMemTotal("").status().isCorruption());
}

}  // namespace
}  // namespace flotilla::agent
