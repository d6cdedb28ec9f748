#include "agent/prometheus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/http_client.hpp"
#include "common/strings.hpp"

namespace flotilla::agent {

using common::replaceAll;
using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

// Prometheus sends sample values as strings: "0.25", "NaN", "+Inf".
StatusOr<std::optional<double>> sampleValue(const json& value) {
  if (!value.is_array() || value.size() != 2 || !value[1].is_string()) {
    return Status::Corruption("Prometheus answer: a sample is not [time, \"value\"]");
  }
  const std::string text = value[1].get<std::string>();
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) {
    return Status::Corruption("Prometheus answer: a sample value is not a number");
  }
  if (std::isnan(v)) return std::optional<double>{};
  return std::optional<double>{v};
}

}  // namespace

std::string instancesPattern(const std::vector<int>& ports) {
  std::string out;
  for (int port : ports) {
    if (!out.empty()) out += '|';
    out += "127.0.0.1:" + std::to_string(port);
  }
  return out;
}

std::string expandQuery(const std::string& query, const std::string& instances,
                        std::chrono::milliseconds window, const std::string& version,
                        const std::string& cluster) {
  std::string out = replaceAll(query, "{instances}", instances);
  out = replaceAll(std::move(out), "{window}", std::to_string(window.count()) + "ms");
  out = replaceAll(std::move(out), "{cluster}", cluster);
  return replaceAll(std::move(out), "{version}", version);
}

StatusOr<std::optional<double>> parseQueryResponse(std::string_view body) {
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status::Corruption("Prometheus answer is not a JSON object");
  }
  const auto status = doc.find("status");
  if (status == doc.end() || !status->is_string()) {
    return Status::Corruption("Prometheus answer has no status");
  }
  if (*status != "success") {
    std::string why = "query failed";
    const auto error = doc.find("error");
    if (error != doc.end() && error->is_string()) {
      why += ": " + error->get<std::string>().substr(0, 300);
    }
    return Status::InvalidArgument("Prometheus " + why);
  }
  const auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) {
    return Status::Corruption("Prometheus answer has no data");
  }
  const auto type = data->find("resultType");
  const auto result = data->find("result");
  if (type == data->end() || !type->is_string() || result == data->end()) {
    return Status::Corruption("Prometheus answer has no result");
  }
  if (*type == "scalar") return sampleValue(*result);
  if (*type != "vector" || !result->is_array()) {
    return Status::InvalidArgument("Prometheus answer is a " +
                                   (type->is_string() ? type->get<std::string>() : "?") +
                                   ", not one number: the query must aggregate to one value");
  }
  if (result->empty()) return std::optional<double>{};
  if (result->size() > 1) {
    return Status::InvalidArgument("Prometheus answer has " + std::to_string(result->size()) +
                                   " series, not one: the query must aggregate (e.g. sum)");
  }
  const json& series = (*result)[0];
  if (!series.is_object() || !series.contains("value")) {
    return Status::Corruption("Prometheus answer: a series has no value");
  }
  return sampleValue(series["value"]);
}

StatusOr<std::optional<double>> queryPrometheus(const std::string& base_url,
                                                const std::string& promql,
                                                std::chrono::milliseconds timeout) {
  std::string url = base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/api/v1/query?query=" + common::urlEncode(promql);
  auto reply = common::httpGet(url, timeout);
  if (!reply.ok()) return reply.status();
  // Prometheus answers a bad query with 400 and a JSON error: let the parser say why.
  if (reply->status != 200 && reply->status != 400 && reply->status != 422) {
    return Status::Unavailable("Prometheus query: HTTP " + std::to_string(reply->status));
  }
  return parseQueryResponse(reply->body);
}

StatusOr<WindowStats> queryWindow(const PrometheusSource& source, const std::vector<int>& ports,
                                  const std::string& version, std::chrono::milliseconds window,
                                  std::chrono::milliseconds timeout) {
  return queryWindow(source, QueryScope{instancesPattern(ports), version, ""}, window, timeout);
}

StatusOr<WindowStats> queryWindow(const PrometheusSource& source, const QueryScope& scope,
                                  std::chrono::milliseconds window,
                                  std::chrono::milliseconds timeout) {
  auto ask = [&](const std::string& query) {
    return queryPrometheus(
        source.url, expandQuery(query, scope.instances, window, scope.version, scope.cluster),
        timeout);
  };
  auto rate = ask(source.request_rate);
  if (!rate.ok()) return Status::Unavailable("request_rate query: " + rate.status().message());
  auto errors = ask(source.error_rate);
  if (!errors.ok()) return Status::Unavailable("error_rate query: " + errors.status().message());
  auto p95 = ask(source.latency_p95);
  if (!p95.ok()) return Status::Unavailable("latency_p95 query: " + p95.status().message());

  WindowStats out;
  out.window = window;
  const double seconds = std::chrono::duration<double>(window).count();
  out.request_rate = std::max(0.0, rate->value_or(0.0));
  out.requests = static_cast<uint64_t>(std::llround(out.request_rate * seconds));
  out.error_rate = std::clamp(errors->value_or(0.0), 0.0, 1.0);
  out.errors =
      static_cast<uint64_t>(std::llround(out.error_rate * static_cast<double>(out.requests)));
  if (*p95 && std::isfinite(**p95) && **p95 >= 0) out.latency_p95 = **p95;
  return out;
}

}  // namespace flotilla::agent
