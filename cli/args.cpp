// Argument values: durations and times, checked by the project's rules.
#include "cli/args.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>

#include "common/rules.hpp"

namespace flotilla::cli {

CLI::Validator durationCheck() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto duration = common::parseDuration(text);
        return duration.ok() ? "" : duration.status().message();
      },
      "");
}

std::chrono::milliseconds durationOf(const std::string& text) {
  return common::parseDuration(text).value();  // aborts on text durationCheck() refused
}

std::string sinceParam(const std::string& since, common::SystemTime now) {
  auto ago = common::parseDuration(since);
  if (!ago.ok()) return since;
  // Whole seconds, the precision this option has always had; a start before 1970 is everything.
  const int64_t ms = std::max<int64_t>(0, common::toUnixMillis(now) - ago->count());
  return common::formatRfc3339(
      std::chrono::floor<std::chrono::seconds>(common::fromUnixMillis(ms)));
}

}  // namespace flotilla::cli
