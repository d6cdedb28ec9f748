// Argument values the commands share a rule for: durations (the plan's rule, one function in
// common/) and the times `audit --since` takes.
#pragma once

#include <chrono>
#include <string>

#include "common/time_format.hpp"

namespace CLI {
class Validator;
}

namespace flotilla::cli {

// The CLI11 check of a DURATION option: common::parseDuration's rule ("90s", "15m", "1h30m"; a
// number needs a unit), refused with its message.
CLI::Validator durationCheck();

// The value of a DURATION option that durationCheck() passed.
std::chrono::milliseconds durationOf(const std::string& text);

// `audit --since`: a duration means that long before `now`, sent as an RFC 3339 time in whole
// seconds; anything else is sent as written, for the coordinator to judge.
std::string sinceParam(const std::string& since, common::SystemTime now);

}  // namespace flotilla::cli
