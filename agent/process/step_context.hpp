// What the parts of a process step need from the step: its log, a sleep that a cancel cuts
// short, and the status a cancelled step returns. ServiceOps (service_ops.hpp) is the real
// one; a unit test can give its own.
#pragma once

#include <chrono>
#include <string>

#include "common/status.hpp"

namespace flotilla::agent {

class StepContext {
 public:
  virtual ~StepContext() = default;
  virtual void say(const std::string& line) const = 0;
  // Sleeps `d` in slices; false when the step was cancelled meanwhile.
  virtual bool pause(std::chrono::steady_clock::duration d) = 0;
  // Marks the step cancelled; the status for the step to return.
  virtual common::Status abort() = 0;
};

}  // namespace flotilla::agent
