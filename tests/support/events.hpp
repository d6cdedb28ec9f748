// Test support, a deployment's history as the coordinator's API returns it: finding events,
// their times, and which states are final.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace flotilla::support {

using nlohmann::json;
using SystemTime = std::chrono::system_clock::time_point;

// succeeded, rolled_back, failed, cancelled: a deployment in one of them never moves again.
bool isFinalState(const std::string& state);

// Position (index) of the first event matching every given non-empty field, or -1.
int findEvent(const json& events, const std::string& type, const std::string& wave = "",
              const std::string& cluster = "", const std::string& step = "");
// Every event of `type` (optionally for one cluster), in order.
std::vector<json> eventsOf(const json& events, const std::string& type,
                           const std::string& cluster = "");
// Every event of `type` for `cluster` and `step`, in order.
std::vector<json> stepEvents(const json& events, const std::string& type,
                             const std::string& cluster, const std::string& step);

// "2026-11-27T01:02:03.456Z" (the coordinator's event times) -> a time point; nullopt when the
// text is not in that form.
std::optional<SystemTime> parseRfc3339(const std::string& text);
// The event's "time"; a test failure (and the epoch) when it is not RFC 3339.
SystemTime timeOf(const json& event);
std::vector<SystemTime> timesOf(const std::vector<json>& events);

}  // namespace flotilla::support
