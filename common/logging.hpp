// Logging set-up shared by the binaries (spdlog to stderr).
#pragma once

#include <string>

#include "common/status.hpp"

namespace flotilla::common {

// level: trace|debug|info|warn|error. `name` prefixes every line (e.g. "agent staging-eu").
Status setupLogging(const std::string& name, const std::string& level);

}  // namespace flotilla::common
