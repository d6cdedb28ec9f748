// Small string helpers shared by the agent and the coordinator.
#pragma once

#include <string>

namespace flotilla::common {

// Every occurrence of `from` in `s` replaced by `to` (templates: "{version}", "{port}"...).
// An empty `from` changes nothing.
std::string replaceAll(std::string s, const std::string& from, const std::string& to);

}  // namespace flotilla::common
