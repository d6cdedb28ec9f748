// RFC 3339 formatting.
#include "common/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace flotilla::common {

std::string formatRfc3339(SystemTime t) {
  int64_t ms = toUnixMillis(t);
  time_t secs = static_cast<time_t>(ms / 1000);
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    secs -= 1;
  }
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

int64_t toUnixMillis(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SystemTime fromUnixMillis(int64_t ms) { return SystemTime(std::chrono::milliseconds(ms)); }

}  // namespace flotilla::common
