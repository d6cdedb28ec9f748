// A replica's CPU and memory from /proc, for the alerts of a bake or an analysis window.
// readProcStat() and totalMemoryBytes() read files; the parsers and shares are pure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/status.hpp"

namespace flotilla::agent {

struct ProcStat {
  uint64_t cpu_ticks = 0;  // utime + stime, in clock ticks
  uint64_t rss_bytes = 0;
  long ticks_per_second = 100;  // sysconf(_SC_CLK_TCK) when read
};

// Reads /proc/<pid>/stat. NotFound when the process does not exist.
common::StatusOr<ProcStat> readProcStat(pid_t pid);
// Parses the content of a /proc/<pid>/stat file; split out so tests can feed odd process names.
common::StatusOr<ProcStat> parseProcStat(std::string_view content, long page_size,
                                         long ticks_per_second);

// CPU used between two readings as a fraction of one core (may exceed 1 on several cores).
// 0 when the wall time is not positive or the counter went backwards (the PID was reused).
double cpuShare(const ProcStat& before, const ProcStat& after, std::chrono::nanoseconds wall);

// MemTotal from /proc/meminfo, in bytes.
common::StatusOr<uint64_t> totalMemoryBytes();
common::StatusOr<uint64_t> parseMemTotal(std::string_view meminfo);

// rss / total, 0 when the total is unknown (0).
double memoryShare(const ProcStat& stat, uint64_t total_bytes);

}  // namespace flotilla::agent
