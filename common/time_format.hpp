// Wall-clock helpers: RFC 3339 timestamps and the clock seam.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace flotilla::common {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

// "2026-11-27T01:02:03.456Z"
std::string formatRfc3339(SystemTime t);
// Unix milliseconds of an RFC 3339 time ("2026-11-27T01:02:03Z", fraction and a numeric
// offset allowed; "t"/"z" lower case too); nothing when it is not one.
std::optional<int64_t> parseRfc3339(const std::string& text);
// Milliseconds since the Unix epoch, the stored form.
int64_t toUnixMillis(SystemTime t);
SystemTime fromUnixMillis(int64_t ms);

// The clock seam: tests advance a fake instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;
  virtual SystemTime wallNow() const = 0;
};

class RealClock : public Clock {
 public:
  // Interface
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  SystemTime wallNow() const override { return std::chrono::system_clock::now(); }
};

}  // namespace flotilla::common
