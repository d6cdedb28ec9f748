// Logging set-up shared by the binaries (spdlog to stderr).
#pragma once

#include <string>
#include <string_view>

#include "common/status.hpp"

namespace flotilla::common {

// level: trace|debug|info|warn|error. `name` prefixes every line (e.g. "agent staging-eu").
Status setupLogging(const std::string& name, const std::string& level);

// Text a peer sent (or a step printed), made safe for one log line: control characters,
// backslashes, bytes that are not UTF-8 and Unicode line or bidi controls are escaped (\n, \x1b,
// \u{202e}), and the result is cut to at most `max` bytes followed by "...(+N bytes)" naming what
// was left out of the input, so a peer can neither forge a line nor flood the log through one
// field. Escaping is reversible: a backslash in the text is written as \\.
std::string loggable(std::string_view text, size_t max = 200);

}  // namespace flotilla::common
