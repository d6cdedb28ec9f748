// Warnings about what peers send, rate-limited: a flood of bad frames writes a line per reason
// every few seconds with a count, not a line per frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace flotilla::coordinator {

class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds every = std::chrono::seconds(10)) : every_(every) {}
  // Whether a line about `reason` may be written now; `suppressed` gets how many were held back
  // since the last one written.
  bool allow(const std::string& reason, std::chrono::steady_clock::time_point now,
             uint64_t* suppressed) {
    Slot& s = slots_[reason];
    if (s.written && now - s.last < every_) {
      ++s.suppressed;
      return false;
    }
    *suppressed = s.suppressed;
    s.suppressed = 0;
    s.last = now;
    s.written = true;
    return true;
  }

 private:
  struct Slot {
    bool written = false;
    std::chrono::steady_clock::time_point last{};
    uint64_t suppressed = 0;
  };
  std::chrono::milliseconds every_;
  std::map<std::string, Slot> slots_;  // few reasons: bounded by the callers' fixed strings
};

}  // namespace flotilla::coordinator
