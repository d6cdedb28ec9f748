// Test support, waiting.
#include "tests/support/wait.hpp"

#include <thread>

namespace flotilla::support {

bool pollUntil(const std::function<bool()>& done, std::chrono::milliseconds deadline,
               std::chrono::milliseconds every) {
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(every);
  }
}

}  // namespace flotilla::support
