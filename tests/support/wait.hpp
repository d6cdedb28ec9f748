// Test support, waiting: poll a condition until it holds or a deadline passes.
#pragma once

#include <chrono>
#include <functional>

namespace flotilla::support {

using namespace std::chrono_literals;

// Calls `done` every `every` until it returns true (then true) or `deadline` has passed (then
// false, after one last call). Records nothing: the caller says what it waited for.
bool pollUntil(const std::function<bool()>& done, std::chrono::milliseconds deadline,
               std::chrono::milliseconds every = 50ms);

}  // namespace flotilla::support
