#include "common/backoff.hpp"

#include <algorithm>

namespace flotilla::common {

namespace {
// Seeds 1, 2, 3... (a simulated fleet's indices) would give a linear congruential engine nearly
// the same first draws: mix the bits first (SplitMix64's finaliser).
uint64_t mixed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

Backoff::Backoff(std::chrono::milliseconds first, std::chrono::milliseconds cap, uint64_t seed)
    : first_(first),
      cap_(std::max(cap, first)),
      bound_(first),
      random_(static_cast<std::minstd_rand::result_type>(mixed(seed) % 2147483647u)) {}

std::chrono::milliseconds Backoff::next() {
  const int64_t high = bound_.count();
  const int64_t low = high / 2;
  std::uniform_int_distribution<int64_t> pick(low, high);
  const std::chrono::milliseconds wait(pick(random_));
  bound_ = std::min(cap_, bound_ * 2);
  return wait;
}

}  // namespace flotilla::common
