// flotilla-demo-service behaviour: fault injection, manifest and duration parsing, metrics.
#include "examples/demo-service/service.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>

namespace flotilla::demo {
namespace {

using nlohmann::json;

// Enough for any real delay and far from overflowing when converted to nanoseconds.
constexpr uint64_t kMaxManifestMillis = 1'000'000'000'000;  // ~31 years

// splitmix64's finaliser: spreads consecutive indexes over the whole 64-bit range.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Shortest text that reads back as the same double (Prometheus parses Go float syntax).
std::string formatDouble(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) std::abort();  // 64 bytes hold any double
  return std::string(buf, end);
}

// Label values escape backslash, double quote and newline (text format 0.0.4).
std::string escapeLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

StatusOr<Milliseconds> manifestMillis(const json& value, const std::string& key) {
  const bool negative =
      value.is_number_integer() && !value.is_number_unsigned() && value.get<int64_t>() < 0;
  if (!value.is_number_integer() || negative) {
    return Status::InvalidArgument("manifest key \"" + key +
                                   "\" must be a non-negative whole number of milliseconds");
  }
  if (value.get<uint64_t>() > kMaxManifestMillis) {
    return Status::InvalidArgument("manifest key \"" + key + "\" is too large: " + value.dump());
  }
  return Milliseconds(value.get<int64_t>());
}

}  // namespace

StatusOr<Milliseconds> parseDuration(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) {
    return Status::InvalidArgument("duration " + quoted +
                                   " must be a whole number and a unit, e.g. 500ms, 5s, 2m");
  }
  // Nine digits of hours still fit in int64 milliseconds.
  if (digits > 9) return Status::InvalidArgument("duration " + quoted + " is too large");
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  const std::string_view unit = text.substr(digits);
  int64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1000;
  } else if (unit == "m") {
    unit_ms = int64_t{60} * 1000;
  } else if (unit == "h") {
    unit_ms = int64_t{60} * 60 * 1000;
  } else {
    return Status::InvalidArgument("duration " + quoted +
                                   " needs a unit: ms, s, m or h (e.g. 500ms, 5s, 2m)");
  }
  return Milliseconds(value * unit_ms);
}

StatusOr<Milliseconds> parseFailAfter(std::string_view text) {
  if (text == "never") return kNever;
  return parseDuration(text);
}

StatusOr<BehaviourOverrides> parseManifest(std::string_view json_text) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("manifest is not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) return Status::InvalidArgument("manifest must be a JSON object");
  BehaviourOverrides out;
  for (const auto& [key, value] : doc.items()) {
    if (key == "error_rate") {
      if (!value.is_number()) {
        return Status::InvalidArgument("manifest key \"error_rate\" must be a number in [0, 1]");
      }
      out.error_rate = value.get<double>();
    } else if (key == "latency_ms" || key == "latency_jitter_ms") {
      auto ms = manifestMillis(value, key);
      if (!ms.ok()) return ms.status();
      (key == "latency_ms" ? out.latency : out.latency_jitter) = *ms;
    } else if (key == "health_fail_after_ms") {
      if (value.is_null()) {
        out.health_fail_after = kNever;
        continue;
      }
      auto ms = manifestMillis(value, key);
      if (!ms.ok()) return ms.status();
      out.health_fail_after = *ms;
    } else {
      return Status::InvalidArgument(
          "unknown manifest key \"" + key +
          "\" (known: error_rate, latency_ms, latency_jitter_ms, health_fail_after_ms)");
    }
  }
  return out;
}

StatusOr<BehaviourOverrides> loadManifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IoError("cannot open manifest " + path);
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IoError("cannot read manifest " + path);
  auto parsed = parseManifest(text.str());
  if (!parsed.ok()) return Status::InvalidArgument(path + ": " + parsed.status().message());
  return parsed;
}

Behaviour resolveBehaviour(const BehaviourOverrides& manifest, const BehaviourOverrides& flags) {
  Behaviour out;
  for (const BehaviourOverrides* layer : {&manifest, &flags}) {
    if (layer->error_rate) out.error_rate = *layer->error_rate;
    if (layer->latency) out.latency = *layer->latency;
    if (layer->latency_jitter) out.latency_jitter = *layer->latency_jitter;
    if (layer->health_fail_after) out.health_fail_after = *layer->health_fail_after;
  }
  return out;
}

Status validateBehaviour(const Behaviour& behaviour) {
  // Written so that NaN fails too.
  if (!(behaviour.error_rate >= 0.0 && behaviour.error_rate <= 1.0)) {
    return Status::InvalidArgument("error rate must be in [0, 1], got " +
                                   formatDouble(behaviour.error_rate));
  }
  for (const auto& [name, value] : {std::pair{"latency", behaviour.latency},
                                    std::pair{"latency jitter", behaviour.latency_jitter}}) {
    if (value < Milliseconds(0) || value > kMaxDelay) {
      return Status::InvalidArgument(std::string(name) + " must be between 0 and " +
                                     std::to_string(kMaxDelay.count()) + " ms, got " +
                                     std::to_string(value.count()) + " ms");
    }
  }
  if (behaviour.health_fail_after < Milliseconds(0)) {
    return Status::InvalidArgument("health fail-after must not be negative");
  }
  return Status::Ok();
}

Status validateVersion(std::string_view version) {
  const bool ok = !version.empty() && version.size() <= 128 &&
                  std::all_of(version.begin(), version.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
                  });
  if (!ok) {
    return Status::InvalidArgument("version \"" + std::string(version) +
                                   "\" must be 1 to 128 characters of A-Z a-z 0-9 . _ + -");
  }
  return Status::Ok();
}

ErrorSpreader::ErrorSpreader(double rate) {
  // Callers validate first (validateBehaviour); anything else is a programming error.
  if (!(rate >= 0.0 && rate <= 1.0)) std::abort();
  ppm_ = static_cast<uint64_t>(std::llround(rate * static_cast<double>(kPartsPerMillion)));
}

uint64_t ErrorSpreader::failuresBefore(uint64_t n) const {
  // Split so n * ppm cannot overflow: each whole million of requests fails exactly ppm_.
  return (n / kPartsPerMillion) * ppm_ + (n % kPartsPerMillion) * ppm_ / kPartsPerMillion;
}

Nanoseconds delayFor(const Behaviour& behaviour, uint64_t index) {
  using std::chrono::microseconds;
  int64_t micros = microseconds(behaviour.latency).count();
  const int64_t jitter = microseconds(behaviour.latency_jitter).count();
  if (jitter > 0) {
    const auto span = static_cast<uint64_t>(2 * jitter + 1);
    micros += static_cast<int64_t>(mix(index) % span) - jitter;
  }
  return microseconds(std::max<int64_t>(micros, 0));
}

void LatencyHistogram::observe(Nanoseconds duration) {
  const int64_t ns = std::max<int64_t>(duration.count(), 0);
  std::size_t bucket = 0;
  while (bucket < kBoundsMicros.size() && ns > kBoundsMicros[bucket] * 1000) ++bucket;
  ++per_bucket_[bucket];
  ++count_;
  sum_ns_ += ns;
}

uint64_t LatencyHistogram::cumulative(std::size_t bucket) const {
  uint64_t total = 0;
  for (std::size_t i = 0; i <= bucket && i < per_bucket_.size(); ++i) total += per_bucket_[i];
  return total;
}

SteadyTime RealClock::now() const { return std::chrono::steady_clock::now(); }
SystemTime RealClock::wallNow() const { return std::chrono::system_clock::now(); }
void RealClock::sleepFor(Nanoseconds duration) const { std::this_thread::sleep_for(duration); }

Service::Service(std::string version, Behaviour behaviour, const Clock& clock)
    : version_(std::move(version)),
      behaviour_(behaviour),
      clock_(clock),
      started_(clock.now()),
      started_wall_(clock.wallNow()),
      spreader_(behaviour.error_rate) {}

Response Service::handleRoot() {
  const uint64_t index = next_index_.fetch_add(1, std::memory_order_relaxed);
  const SteadyTime start = clock_.now();
  const Nanoseconds delay = delayFor(behaviour_, index);
  if (delay > Nanoseconds(0)) clock_.sleepFor(delay);
  const bool fail = spreader_.fails(index);
  const Nanoseconds elapsed = clock_.now() - start;
  {
    std::lock_guard lock(mu_);
    ++(fail ? error_total_ : ok_total_);
    histogram_.observe(elapsed);
  }
  if (fail) {
    return {500, "text/plain; charset=utf-8", "injected error: checkout " + version_ + "\n"};
  }
  return {200, "text/plain; charset=utf-8", "checkout " + version_ + "\n"};
}

Response Service::handleHealth() const {
  // Compared in whole milliseconds: kNever (and other huge values) would overflow nanoseconds.
  const auto up = std::chrono::duration_cast<Milliseconds>(clock_.now() - started_);
  const bool failing = behaviour_.health_fail_after != kNever && up >= behaviour_.health_fail_after;
  const json body = {{"status", failing ? "failing" : "ok"}, {"version", version_}};
  return {failing ? 503 : 200, "application/json", body.dump() + "\n"};
}

Response Service::handleMetrics() const { return {200, kMetricsContentType, metricsText()}; }

std::string Service::metricsText() const {
  uint64_t ok_total = 0;
  uint64_t error_total = 0;
  LatencyHistogram histogram;
  {
    std::lock_guard lock(mu_);
    ok_total = ok_total_;
    error_total = error_total_;
    histogram = histogram_;
  }
  std::string out;
  family(out, "http_requests_total", "counter", "Requests to / by HTTP status code.");
  out += "http_requests_total{code=\"200\"} " + std::to_string(ok_total) + "\n";
  out += "http_requests_total{code=\"500\"} " + std::to_string(error_total) + "\n";

  family(out, "http_request_duration_seconds", "histogram",
         "Time to answer / requests, injected latency included.");
  for (std::size_t i = 0; i < LatencyHistogram::kBoundLabels.size(); ++i) {
    out += "http_request_duration_seconds_bucket{le=\"";
    out += LatencyHistogram::kBoundLabels[i];
    out += "\"} " + std::to_string(histogram.cumulative(i)) + "\n";
  }
  out += "http_request_duration_seconds_sum " + formatDouble(histogram.sumSeconds()) + "\n";
  out += "http_request_duration_seconds_count " + std::to_string(histogram.count()) + "\n";

  family(out, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
  const auto start_us =
      std::chrono::duration_cast<std::chrono::microseconds>(started_wall_.time_since_epoch())
          .count();
  out += "process_start_time_seconds " + formatDouble(static_cast<double>(start_us) / 1e6) + "\n";

  family(out, "demo_build_info", "gauge", "The version this demo service reports; always 1.");
  out += "demo_build_info{version=\"" + escapeLabel(version_) + "\"} 1\n";
  return out;
}

}  // namespace flotilla::demo
