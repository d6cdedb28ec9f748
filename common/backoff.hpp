// Exponential backoff with jitter, for a retry that a whole fleet makes at once (agents
// registering with a coordinator that has just started, behind thousands of CurveZMQ
// handshakes): each wait doubles from `first` up to `cap` and is drawn at random from the upper
// half of that bound, so that retries spread out instead of arriving together.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace flotilla::common {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds first, std::chrono::milliseconds cap, uint64_t seed);

  // The wait before the next attempt; each call doubles the bound of the one after, up to cap.
  std::chrono::milliseconds next();
  // After a success: the next wait is drawn below `first` again.
  void reset() { bound_ = first_; }
  // The upper bound of the next wait.
  std::chrono::milliseconds bound() const { return bound_; }

 private:
  std::chrono::milliseconds first_;
  std::chrono::milliseconds cap_;
  std::chrono::milliseconds bound_;
  std::minstd_rand random_;  // small: a simulated fleet holds 10,000 of these
};

}  // namespace flotilla::common
