// /proc readings.
#include "agent/proc_stat.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>

namespace flotilla::agent {

using common::Status;
using common::StatusOr;

namespace {

// /proc files report size 0, so they are read until EOF; the cap guards against a surprise.
StatusOr<std::string> readSmallFile(const std::string& path) {
  constexpr std::size_t kMaxProcFileBytes = 1 << 20;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = path + ": " + std::strerror(err);
    if (err == ENOENT || err == ESRCH) return Status::NotFound(std::move(msg));
    return Status::IoError(std::move(msg));
  }
  std::string content;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      // A process that exits between open and read yields ESRCH.
      std::string msg = path + ": " + std::strerror(err);
      if (err == ESRCH) return Status::NotFound(std::move(msg));
      return Status::IoError(std::move(msg));
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
    if (content.size() > kMaxProcFileBytes) {
      ::close(fd);
      return Status::IoError(path + ": larger than expected");
    }
  }
  ::close(fd);
  return content;
}

bool parseUnsigned(std::string_view tok, uint64_t* out) {
  if (tok.empty()) return false;
  const char* end = tok.data() + tok.size();
  const auto [ptr, ec] = std::from_chars(tok.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

StatusOr<ProcStat> parseProcStat(std::string_view content, long page_size, long ticks_per_second) {
  // The command name (field 2) is in parentheses and may itself hold spaces and ')', so fields
  // are counted from the last ')'.
  const std::size_t close = content.rfind(')');
  if (close == std::string_view::npos) return Status::Corruption("stat: no ')' after the comm");
  std::string_view rest = content.substr(close + 1);

  // Fields after the comm start at field 3 (state); utime is 14, stime 15, rss 24 (pages).
  constexpr int kFirstField = 3;
  constexpr int kUtime = 14;
  constexpr int kStime = 15;
  constexpr int kRss = 24;
  uint64_t utime = 0;
  uint64_t stime = 0;
  uint64_t rss_pages = 0;
  int field = kFirstField;
  std::size_t pos = 0;
  while (field <= kRss) {
    pos = rest.find_first_not_of(" \n", pos);
    if (pos == std::string_view::npos) break;
    const std::size_t end = std::min(rest.find_first_of(" \n", pos), rest.size());
    const std::string_view tok = rest.substr(pos, end - pos);
    pos = end;
    bool ok = true;
    if (field == kUtime) ok = parseUnsigned(tok, &utime);
    if (field == kStime) ok = parseUnsigned(tok, &stime);
    if (field == kRss) {
      // rss is signed in the kernel's format; a negative value is treated as nothing resident.
      int64_t signed_rss = 0;
      const auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), signed_rss);
      ok = !tok.empty() && ec == std::errc() && ptr == tok.data() + tok.size();
      rss_pages = signed_rss > 0 ? static_cast<uint64_t>(signed_rss) : 0;
    }
    if (!ok) return Status::Corruption("stat: field " + std::to_string(field) + " is not a number");
    ++field;
  }
  if (field <= kRss) return Status::Corruption("stat: too few fields");

  ProcStat stat;
  stat.cpu_ticks = utime + stime;
  stat.rss_bytes = page_size > 0 ? rss_pages * static_cast<uint64_t>(page_size) : 0;
  stat.ticks_per_second = ticks_per_second > 0 ? ticks_per_second : 100;
  return stat;
}

StatusOr<ProcStat> readProcStat(pid_t pid) {
  if (pid <= 0) return Status::InvalidArgument("invalid pid " + std::to_string(pid));
  StatusOr<std::string> content = readSmallFile("/proc/" + std::to_string(pid) + "/stat");
  if (!content.ok()) return content.status();
  return parseProcStat(*content, ::sysconf(_SC_PAGESIZE), ::sysconf(_SC_CLK_TCK));
}

double cpuShare(const ProcStat& before, const ProcStat& after, std::chrono::nanoseconds wall) {
  if (wall.count() <= 0 || after.cpu_ticks < before.cpu_ticks) return 0;
  const long tps = after.ticks_per_second > 0 ? after.ticks_per_second : 100;
  const double cpu_seconds =
      static_cast<double>(after.cpu_ticks - before.cpu_ticks) / static_cast<double>(tps);
  return cpu_seconds / std::chrono::duration<double>(wall).count();
}

StatusOr<uint64_t> parseMemTotal(std::string_view meminfo) {
  std::size_t start = 0;
  while (start < meminfo.size()) {
    std::size_t end = meminfo.find('\n', start);
    if (end == std::string_view::npos) end = meminfo.size();
    std::string_view line = meminfo.substr(start, end - start);
    start = end + 1;
    constexpr std::string_view kKey = "MemTotal:";
    if (line.substr(0, kKey.size()) != kKey) continue;
    line.remove_prefix(kKey.size());
    const std::size_t num = line.find_first_not_of(' ');
    if (num == std::string_view::npos) break;
    line.remove_prefix(num);
    const std::size_t num_end = std::min(line.find(' '), line.size());
    uint64_t kib = 0;
    if (!parseUnsigned(line.substr(0, num_end), &kib) || line.substr(num_end) != " kB" ||
        kib > std::numeric_limits<uint64_t>::max() / 1024) {
      break;
    }
    return kib * 1024;
  }
  return Status::Corruption("meminfo: no readable MemTotal line");
}

StatusOr<uint64_t> totalMemoryBytes() {
  StatusOr<std::string> content = readSmallFile("/proc/meminfo");
  if (!content.ok()) return content.status();
  return parseMemTotal(*content);
}

double memoryShare(const ProcStat& stat, uint64_t total_bytes) {
  if (total_bytes == 0) return 0;
  return static_cast<double>(stat.rss_bytes) / static_cast<double>(total_bytes);
}

}  // namespace flotilla::agent
