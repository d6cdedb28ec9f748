// Test support, a deployment's history.
#include "tests/support/events.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <ctime>

namespace flotilla::support {

namespace {
bool fieldIs(const json& event, const char* key, const std::string& want) {
  return want.empty() || (event.contains(key) && event[key] == want);
}
}  // namespace

bool isFinalState(const std::string& state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "cancelled";
}

int findEvent(const json& events, const std::string& type, const std::string& wave,
              const std::string& cluster, const std::string& step) {
  for (size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    if (fieldIs(e, "type", type) && fieldIs(e, "wave", wave) && fieldIs(e, "cluster", cluster) &&
        fieldIs(e, "step", step)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::vector<json> eventsOf(const json& events, const std::string& type,
                           const std::string& cluster) {
  std::vector<json> out;
  for (const auto& e : events) {
    if (fieldIs(e, "type", type) && fieldIs(e, "cluster", cluster)) out.push_back(e);
  }
  return out;
}

std::vector<json> stepEvents(const json& events, const std::string& type,
                             const std::string& cluster, const std::string& step) {
  std::vector<json> out;
  for (const auto& e : eventsOf(events, type, cluster)) {
    if (e.value("step", "") == step) out.push_back(e);
  }
  return out;
}

std::optional<SystemTime> parseRfc3339(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  std::string rest = text.substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest[0] == '.') {
    size_t digits = 1;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) {
      ++digits;
    }
    std::string fraction = rest.substr(1, digits - 1);
    fraction.resize(3, '0');
    millis = std::stoi(fraction);
    rest = rest.substr(digits);
  }
  if (rest != "Z") return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const time_t seconds = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(seconds) + std::chrono::milliseconds(millis);
}

SystemTime timeOf(const json& event) {
  auto t = parseRfc3339(event.value("time", ""));
  EXPECT_TRUE(t.has_value()) << "event time not RFC 3339: " << event.dump();
  return t.value_or(SystemTime{});
}

std::vector<SystemTime> timesOf(const std::vector<json>& events) {
  std::vector<SystemTime> out;
  out.reserve(events.size());
  for (const auto& e : events) out.push_back(timeOf(e));
  return out;
}

}  // namespace flotilla::support
