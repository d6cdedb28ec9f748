// Tests for flotilla-demo-service: the behaviour library (examples/demo-service/service.cpp)
// with a fake clock, and the real binary over HTTP (libcurl) on a loopback port of its choice.
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "examples/demo-service/service.hpp"

extern char** environ;

namespace flotilla::demo {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

// Generous: only a broken implementation gets near it.
constexpr auto kDeadline = 10s;

// ---------------------------------------------------------------------------------------------
// Fakes and helpers

// Time moves only when a test (or a request's injected latency) moves it.
class FakeClock : public Clock {
 public:
  // Interface
  SteadyTime now() const override { return SteadyTime(Nanoseconds(offset_ns_.load())); }
  SystemTime wallNow() const override {
    return kWallStart +
           std::chrono::duration_cast<SystemTime::duration>(Nanoseconds(offset_ns_.load()));
  }
  void sleepFor(Nanoseconds duration) const override { offset_ns_ += duration.count(); }

  void advance(Nanoseconds duration) { offset_ns_ += duration.count(); }

  static constexpr SystemTime kWallStart{std::chrono::seconds(1'700'000'000)};

 private:
  mutable std::atomic<int64_t> offset_ns_{1'000'000'000};
};

// One parsed sample line of the Prometheus text format.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct ParsedMetrics {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family name -> counter|gauge|histogram|...
  std::set<std::string> helps;

  std::optional<double> find(const std::string& name,
                             const std::map<std::string, std::string>& labels = {}) const {
    for (const Sample& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nullopt;
  }
};

// The family a sample belongs to: histograms spread over _bucket, _sum and _count.
std::string familyOf(const std::string& sample_name,
                     const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (sample_name.size() > s.size() && sample_name.ends_with(s)) {
      std::string base = sample_name.substr(0, sample_name.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return sample_name;
}

std::optional<double> parseValue(const std::string& text) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

bool isNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool isNameChar(char c) { return isNameStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

// Consumes a metric name (label names: no ':') at `pos`; empty if there is none.
std::string takeName(const std::string& line, std::size_t& pos, bool allow_colon) {
  const std::size_t start = pos;
  while (pos < line.size() && ((pos == start ? isNameStart(line[pos]) : isNameChar(line[pos])) ||
                               (allow_colon && line[pos] == ':'))) {
    ++pos;
  }
  return line.substr(start, pos - start);
}

// `{name="value",...}` at `pos` (which is at '{'), unescaping values; false if malformed.
bool takeLabels(const std::string& line, std::size_t& pos,
                std::map<std::string, std::string>& labels) {
  ++pos;  // '{'
  while (pos < line.size() && line[pos] != '}') {
    const std::string name = takeName(line, pos, false);
    if (name.empty() || line.compare(pos, 2, "=\"") != 0) return false;
    pos += 2;
    std::string value;
    while (pos < line.size() && line[pos] != '"') {
      if (line[pos] == '\\') {
        if (++pos == line.size()) return false;
        const char c = line[pos];
        if (c != '\\' && c != '"' && c != 'n') return false;
        value += c == 'n' ? '\n' : c;
      } else {
        value += line[pos];
      }
      ++pos;
    }
    if (pos == line.size() || !labels.emplace(name, value).second) return false;
    ++pos;  // closing quote
    if (pos < line.size() && line[pos] == ',') ++pos;
  }
  if (pos == line.size()) return false;
  ++pos;  // '}'
  return true;
}

// A strict reader of text format 0.0.4, as much of it as the service uses: HELP and TYPE
// before a family's samples, a family's samples together, names and labels well formed, values
// that parse, every line ended by '\n'. Hand-written rather than std::regex, which trips GCC 12's
// -Wmaybe-uninitialized in sanitizer builds.
::testing::AssertionResult parseMetrics(const std::string& text, ParsedMetrics& out) {
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  if (text.empty() || text.back() != '\n') {
    return ::testing::AssertionFailure() << "text does not end with a newline";
  }
  std::set<std::string> finished_families;
  std::string current_family;
  std::size_t next = 0;
  int line_no = 0;
  while (next < text.size()) {
    const std::size_t eol = text.find('\n', next);
    const std::string line = text.substr(next, eol - next);
    next = eol + 1;
    ++line_no;
    auto fail = [&]() {
      return ::testing::AssertionFailure() << "line " << line_no << ": \"" << line << "\": ";
    };
    std::size_t pos = 0;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      pos = 7;
      const std::string name = takeName(line, pos, true);
      if (name.empty() || pos >= line.size() || line[pos] != ' ') return fail() << "bad name";
      const std::string rest = line.substr(pos + 1);
      if (line[2] == 'H') {
        if (!out.helps.insert(name).second) return fail() << "second HELP";
      } else {
        if (kTypes.count(rest) == 0) return fail() << "unknown type";
        if (!out.types.emplace(name, rest).second) return fail() << "second TYPE";
      }
      continue;
    }
    if (line.starts_with("#")) return fail() << "malformed comment";

    Sample sample;
    sample.name = takeName(line, pos, true);
    if (sample.name.empty()) return fail() << "no metric name";
    if (pos < line.size() && line[pos] == '{' && !takeLabels(line, pos, sample.labels)) {
      return fail() << "malformed labels";
    }
    if (pos >= line.size() || line[pos] != ' ') return fail() << "no value";
    const std::string rest = line.substr(pos + 1);
    const std::size_t space = rest.find(' ');
    auto value = parseValue(rest.substr(0, space));
    if (!value) return fail() << "value does not parse";
    if (space != std::string::npos) {  // an optional integer timestamp
      const std::string ts = rest.substr(space + 1);
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos) {
        return fail() << "bad timestamp";
      }
    }
    sample.value = *value;
    const std::string fam = familyOf(sample.name, out.types);
    if (out.types.count(fam) == 0) return fail() << "sample before its TYPE line";
    if (fam != current_family) {
      if (finished_families.count(fam) > 0) return fail() << "family split in two";
      if (!current_family.empty()) finished_families.insert(current_family);
      current_family = fam;
    }
    out.samples.push_back(std::move(sample));
  }
  for (const auto& [name, type] : out.types) {
    if (out.helps.count(name) == 0) return ::testing::AssertionFailure() << name << " has no HELP";
  }
  return ::testing::AssertionSuccess();
}

const std::vector<std::string> kBucketLabels = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                                "0.5",   "1",    "2.5",   "5",    "+Inf"};

double bucket(const ParsedMetrics& m, const std::string& le) {
  return m.find("http_request_duration_seconds_bucket", {{"le", le}}).value_or(-1);
}

double requests(const ParsedMetrics& m, const std::string& code) {
  return m.find("http_requests_total", {{"code", code}}).value_or(-1);
}

// ---------------------------------------------------------------------------------------------
// Durations, manifest, validation

TEST(ParseDurationTest, AcceptsWholeNumbersWithAUnit) {
  EXPECT_EQ(*parseDuration("500ms"), 500ms);
  EXPECT_EQ(*parseDuration("5s"), 5s);
  EXPECT_EQ(*parseDuration("2m"), 2min);
  EXPECT_EQ(*parseDuration("1h"), 1h);
  EXPECT_EQ(*parseDuration("0s"), 0ms);
  EXPECT_EQ(*parseDuration("0ms"), 0ms);
}

TEST(ParseDurationTest, RejectsAnythingElse) {
  for (const char* bad : {"", "5", "s", "5x", "-1s", "1.5s", " 5s", "5s ", "5 s", "5sec", "5S",
                          "9999999999h", "never"}) {
    auto parsed = parseDuration(bad);
    EXPECT_FALSE(parsed.ok()) << "\"" << bad << "\"";
    if (!parsed.ok()) {
      EXPECT_TRUE(parsed.status().isInvalidArgument());
    }
  }
}

TEST(ParseDurationTest, FailAfterAlsoTakesNever) {
  EXPECT_EQ(*parseFailAfter("never"), kNever);
  EXPECT_EQ(*parseFailAfter("300ms"), 300ms);
  EXPECT_FALSE(parseFailAfter("Never").ok());
}

TEST(ManifestTest, ReadsEveryKey) {
  auto m = parseManifest(
      R"({"error_rate": 0.25, "latency_ms": 300, "latency_jitter_ms": 40,
          "health_fail_after_ms": 5000})");
  ASSERT_TRUE(m.ok()) << m.status().toString();
  EXPECT_EQ(m->error_rate, 0.25);
  EXPECT_EQ(m->latency, 300ms);
  EXPECT_EQ(m->latency_jitter, 40ms);
  EXPECT_EQ(m->health_fail_after, 5000ms);
}

TEST(ManifestTest, EveryKeyIsOptionalAndNullHealthMeansNever) {
  auto empty = parseManifest("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->error_rate || empty->latency || empty->latency_jitter ||
               empty->health_fail_after);
  auto never = parseManifest(R"({"health_fail_after_ms": null})");
  ASSERT_TRUE(never.ok());
  EXPECT_EQ(never->health_fail_after, kNever);
}

TEST(ManifestTest, RejectsBadDocumentsWithTheReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not valid JSON"},
      {"[1, 2]", "JSON object"},
      {R"({"error-rate": 0.2})", "unknown manifest key \"error-rate\""},
      {R"({"error_rate": "0.2"})", "error_rate"},
      {R"({"latency_ms": 1.5})", "latency_ms"},
      {R"({"latency_ms": -1})", "latency_ms"},
      {R"({"latency_jitter_ms": true})", "latency_jitter_ms"},
      {R"({"health_fail_after_ms": "5s"})", "health_fail_after_ms"},
      {R"({"health_fail_after_ms": 18446744073709551615})", "too large"},
  };
  for (const auto& [doc, reason] : cases) {
    auto m = parseManifest(doc);
    ASSERT_FALSE(m.ok()) << doc;
    EXPECT_TRUE(m.status().isInvalidArgument()) << doc;
    EXPECT_NE(m.status().message().find(reason), std::string::npos)
        << doc << " -> " << m.status().message();
  }
}

TEST(ManifestTest, LoadReportsTheFile) {
  auto missing = loadManifest("/nonexistent/demo-manifest.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().isIoError());

  const std::string path = ::testing::TempDir() + "/demo_service_test_bad_manifest.json";
  std::ofstream(path) << R"({"latency": 5})";
  auto bad = loadManifest(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().message();
  std::filesystem::remove(path);
}

TEST(ResolveBehaviourTest, DefaultsThenManifestThenFlags) {
  const Behaviour defaults = resolveBehaviour({}, {});
  EXPECT_EQ(defaults.error_rate, 0.0);
  EXPECT_EQ(defaults.latency, 0ms);
  EXPECT_EQ(defaults.latency_jitter, 0ms);
  EXPECT_EQ(defaults.health_fail_after, kNever);

  BehaviourOverrides manifest;
  manifest.error_rate = 0.5;
  manifest.latency = 300ms;
  manifest.health_fail_after = 1s;
  BehaviourOverrides flags;
  flags.error_rate = 0.0;  // an explicit zero still wins over the manifest
  flags.latency_jitter = 20ms;
  const Behaviour b = resolveBehaviour(manifest, flags);
  EXPECT_EQ(b.error_rate, 0.0);
  EXPECT_EQ(b.latency, 300ms);
  EXPECT_EQ(b.latency_jitter, 20ms);
  EXPECT_EQ(b.health_fail_after, 1s);
}

TEST(ValidateTest, BehaviourRanges) {
  EXPECT_TRUE(validateBehaviour(Behaviour{}).ok());
  EXPECT_TRUE(validateBehaviour(Behaviour{1.0, kMaxDelay, kMaxDelay, 0ms}).ok());
  EXPECT_FALSE(validateBehaviour(Behaviour{1.01, 0ms, 0ms, kNever}).ok());
  EXPECT_FALSE(validateBehaviour(Behaviour{-0.1, 0ms, 0ms, kNever}).ok());
  EXPECT_FALSE(validateBehaviour(Behaviour{NAN, 0ms, 0ms, kNever}).ok());
  EXPECT_FALSE(validateBehaviour(Behaviour{0, kMaxDelay + 1ms, 0ms, kNever}).ok());
  EXPECT_FALSE(validateBehaviour(Behaviour{0, 0ms, -1ms, kNever}).ok());
  EXPECT_FALSE(validateBehaviour(Behaviour{0, 0ms, 0ms, -1ms}).ok());
}

TEST(ValidateTest, VersionIsSafeForHeadersJsonAndLabels) {
  for (const char* good : {"1.0.0", "2.0.0-slow", "v3_rc+build.7"}) {
    EXPECT_TRUE(validateVersion(good).ok()) << good;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "1.0 0", "a\"b", "x\ny", "a\\b", std::string(129, 'v')}) {
    EXPECT_FALSE(validateVersion(bad).ok()) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Error spreading and latency

TEST(ErrorSpreaderTest, TwentyPercentIsExactlyTwentyOfEveryHundred) {
  ErrorSpreader spreader(0.2);
  for (uint64_t block = 0; block < 100; ++block) {
    int failures = 0;
    for (uint64_t i = 0; i < 100; ++i) failures += spreader.fails(block * 100 + i) ? 1 : 0;
    ASSERT_EQ(failures, 20) << "block " << block;
  }
  // Spread out, not bunched: every fifth request.
  EXPECT_FALSE(spreader.fails(0));
  EXPECT_TRUE(spreader.fails(4));
  EXPECT_TRUE(spreader.fails(9));
  EXPECT_FALSE(spreader.fails(10));
}

TEST(ErrorSpreaderTest, ExactForRatesThatAreInexactInBinary) {
  // 100 * 0.29 is 28.999999999999996 in doubles; the spreader works in parts per million.
  for (double rate : {0.29, 0.57, 0.07, 0.01, 0.99}) {
    ErrorSpreader spreader(rate);
    EXPECT_EQ(spreader.failuresBefore(100), static_cast<uint64_t>(std::llround(rate * 100)))
        << rate;
  }
}

TEST(ErrorSpreaderTest, EdgesAndWindows) {
  ErrorSpreader never(0.0);
  ErrorSpreader always(1.0);
  for (uint64_t i = 0; i < 1000; ++i) {
    ASSERT_FALSE(never.fails(i));
    ASSERT_TRUE(always.fails(i));
  }
  // Any window of n consecutive requests fails floor or ceil of n * rate.
  ErrorSpreader third(1.0 / 3);
  for (uint64_t start = 0; start < 200; ++start) {
    int failures = 0;
    for (uint64_t i = start; i < start + 10; ++i) failures += third.fails(i) ? 1 : 0;
    ASSERT_TRUE(failures == 3 || failures == 4) << "window at " << start << ": " << failures;
  }
  // Large indexes do not overflow.
  EXPECT_EQ(ErrorSpreader(0.5).failuresBefore(uint64_t{1} << 62), uint64_t{1} << 61);
}

TEST(DelayTest, JitterStaysInRangeAndRepeats) {
  Behaviour b;
  b.latency = 100ms;
  b.latency_jitter = 20ms;
  std::set<int64_t> seen;
  for (uint64_t i = 0; i < 1000; ++i) {
    const Nanoseconds d = delayFor(b, i);
    ASSERT_GE(d, 80ms);
    ASSERT_LE(d, 120ms);
    ASSERT_EQ(d, delayFor(b, i));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 100u);  // actually varies

  b.latency = 5ms;  // jitter larger than the latency: clamped at zero, never negative
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_GE(delayFor(b, i), 0ns);
  b.latency_jitter = 0ms;
  EXPECT_EQ(delayFor(b, 7), 5ms);
}

// ---------------------------------------------------------------------------------------------
// Histogram and metrics text

TEST(LatencyHistogramTest, BucketBoundsAreInclusive) {
  const std::vector<std::pair<Nanoseconds, std::size_t>> cases = {
      {0ns, 0},   {5ms, 0},   {5ms + 1ns, 1}, {10ms, 1},   {25ms, 2}, {30ms, 3},      {100ms, 4},
      {101ms, 5}, {500ms, 6}, {1s, 7},        {2500ms, 8}, {5s, 9},   {5s + 1ns, 10}, {1h, 10},
  };
  for (const auto& [duration, first_bucket] : cases) {
    LatencyHistogram h;
    h.observe(duration);
    for (std::size_t i = 0; i < LatencyHistogram::kBoundLabels.size(); ++i) {
      EXPECT_EQ(h.cumulative(i), i >= first_bucket ? 1u : 0u)
          << duration.count() << "ns, le=" << LatencyHistogram::kBoundLabels[i];
    }
  }
}

TEST(LatencyHistogramTest, CountsAndSum) {
  LatencyHistogram h;
  h.observe(3ms);
  h.observe(7ms);
  h.observe(7s);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.cumulative(0), 1u);
  EXPECT_EQ(h.cumulative(1), 2u);
  EXPECT_EQ(h.cumulative(9), 2u);
  EXPECT_EQ(h.cumulative(10), 3u);
  EXPECT_DOUBLE_EQ(h.sumSeconds(), 7.01);
}

// The reader above is what the format tests rest on; it must reject what Prometheus would.
TEST(MetricsReaderTest, RejectsMalformedText) {
  const std::string head = "# HELP x_total X.\n# TYPE x_total counter\n";
  ParsedMetrics ok;
  EXPECT_TRUE(parseMetrics(head + "x_total{a=\"1\",b=\"q\\\"\"} 3 1700000000000\n", ok));
  EXPECT_EQ(ok.find("x_total", {{"a", "1"}, {"b", "q\""}}), 3);
  for (const std::string& bad : std::vector<std::string>{
           head + "x_total 3",                                                 // no final newline
           "x_total 3\n",                                                      // no TYPE
           head + "x_total{a=1} 3\n",                                          // unquoted label
           head + "x_total{a=\"1\" 3\n",                                       // unclosed braces
           head + "x_total three\n",                                           // value
           head + "x_total 3 soon\n",                                          // timestamp
           head + "# TYPE x_total gauge\nx_total 3\n",                         // second TYPE
           "# TYPE y gauge\ny 1\n",                                            // no HELP
           head + "x_total 1\n# HELP y Y.\n# TYPE y gauge\ny 1\nx_total 2\n",  // split family
       }) {
    ParsedMetrics m;
    EXPECT_FALSE(parseMetrics(bad, m)) << bad;
  }
}

TEST(ServiceTest, MetricsTextParsesAndHasEveryFamily) {
  FakeClock clock;
  Service service("2.0.0-slow", Behaviour{.error_rate = 0.5, .latency = 30ms}, clock);
  for (int i = 0; i < 4; ++i) service.handleRoot();

  const Response r = service.handleMetrics();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  ParsedMetrics m;
  ASSERT_TRUE(parseMetrics(r.body, m)) << r.body;

  EXPECT_EQ(m.types["http_requests_total"], "counter");
  EXPECT_EQ(m.types["http_request_duration_seconds"], "histogram");
  EXPECT_EQ(m.types["process_start_time_seconds"], "gauge");
  EXPECT_EQ(m.types["demo_build_info"], "gauge");

  EXPECT_EQ(requests(m, "200"), 2);
  EXPECT_EQ(requests(m, "500"), 2);
  // Buckets in order, cumulative, +Inf equal to _count; each request took exactly 30ms.
  double previous = 0;
  for (const std::string& le : kBucketLabels) {
    const double v = bucket(m, le);
    ASSERT_GE(v, previous) << "le=" << le;
    previous = v;
  }
  EXPECT_EQ(bucket(m, "0.025"), 0);
  EXPECT_EQ(bucket(m, "0.05"), 4);
  EXPECT_EQ(bucket(m, "+Inf"), 4);
  EXPECT_EQ(m.find("http_request_duration_seconds_count"), 4);
  EXPECT_DOUBLE_EQ(m.find("http_request_duration_seconds_sum").value_or(-1), 0.12);
  EXPECT_EQ(m.find("process_start_time_seconds"), 1'700'000'001.0);  // the fake's start
  EXPECT_EQ(m.find("demo_build_info", {{"version", "2.0.0-slow"}}), 1);
}

TEST(ServiceTest, FreshServiceReportsZeroesNotNothing) {
  FakeClock clock;
  Service service("1.0.0", Behaviour{}, clock);
  ParsedMetrics m;
  ASSERT_TRUE(parseMetrics(service.metricsText(), m));
  EXPECT_EQ(requests(m, "200"), 0);
  EXPECT_EQ(requests(m, "500"), 0);
  EXPECT_EQ(bucket(m, "+Inf"), 0);
  EXPECT_EQ(m.find("http_request_duration_seconds_sum"), 0);
  // /health and /metrics are not counted as traffic.
  service.handleHealth();
  service.handleMetrics();
  ParsedMetrics after;
  ASSERT_TRUE(parseMetrics(service.metricsText(), after));
  EXPECT_EQ(after.find("http_request_duration_seconds_count"), 0);
}

TEST(ServiceTest, RootAnswersAndLatencyGoesThroughTheClock) {
  FakeClock clock;
  Service service("1.2.3", Behaviour{.error_rate = 0.2, .latency = 6ms}, clock);
  const SteadyTime before = clock.now();
  std::vector<int> codes;
  for (int i = 0; i < 5; ++i) {
    const Response r = service.handleRoot();
    codes.push_back(r.status);
    EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
    if (r.status == 200) {
      EXPECT_EQ(r.body, "checkout 1.2.3\n");
    } else {
      EXPECT_NE(r.body.find("1.2.3"), std::string::npos);
    }
  }
  EXPECT_EQ(codes, (std::vector<int>{200, 200, 200, 200, 500}));
  EXPECT_EQ(clock.now() - before, 30ms);
  ParsedMetrics m;
  ASSERT_TRUE(parseMetrics(service.metricsText(), m));
  EXPECT_EQ(bucket(m, "0.005"), 0);  // 6ms is past the first bound
  EXPECT_EQ(bucket(m, "0.01"), 5);
}

TEST(ServiceTest, ConcurrentRequestsStillFailExactlyTheRate) {
  FakeClock clock;
  Service service("1.0.0", Behaviour{.error_rate = 0.2}, clock);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 125; ++i) {
        if (service.handleRoot().status == 500) ++errors;
        if (i % 25 == 0) service.metricsText();  // scrapes race with traffic
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 200);
  ParsedMetrics m;
  ASSERT_TRUE(parseMetrics(service.metricsText(), m));
  EXPECT_EQ(requests(m, "200"), 800);
  EXPECT_EQ(requests(m, "500"), 200);
  EXPECT_EQ(m.find("http_request_duration_seconds_count"), 1000);
}

// ---------------------------------------------------------------------------------------------
// Health

TEST(HealthTest, FailsExactlyWhenFailAfterHasPassed) {
  FakeClock clock;
  Service service("1.0.0", Behaviour{.health_fail_after = 300ms}, clock);
  Response r = service.handleHealth();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, "{\"status\":\"ok\",\"version\":\"1.0.0\"}\n");

  clock.advance(299ms);
  EXPECT_EQ(service.handleHealth().status, 200);
  clock.advance(999us);
  EXPECT_EQ(service.handleHealth().status, 200);  // 299.999ms
  clock.advance(1us);
  r = service.handleHealth();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "{\"status\":\"failing\",\"version\":\"1.0.0\"}\n");
  clock.advance(1h);
  EXPECT_EQ(service.handleHealth().status, 503);  // and stays failing
}

TEST(HealthTest, ZeroFailsFromTheStartAndNeverNeverFails) {
  FakeClock clock;
  Behaviour zero;
  zero.health_fail_after = 0ms;
  EXPECT_EQ(Service("1.0.0", zero, clock).handleHealth().status, 503);

  Service healthy("1.0.0", Behaviour{}, clock);
  clock.advance(24h * 365 * 100);
  EXPECT_EQ(healthy.handleHealth().status, 200);
}

TEST(HealthTest, LatencyDoesNotSlowHealth) {
  FakeClock clock;
  Service service("1.0.0", Behaviour{.latency = 1s}, clock);
  const SteadyTime before = clock.now();
  service.handleHealth();
  service.handleMetrics();
  EXPECT_EQ(clock.now(), before);
}

// ---------------------------------------------------------------------------------------------
// The real binary

struct HttpResult {
  long status = 0;  // 0: no answer
  std::string body;
  std::string content_type;
  std::string x_version;
};

size_t appendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t readHeader(char* data, size_t size, size_t count, void* out) {
  std::string line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  auto* result = static_cast<HttpResult*>(out);
  const std::string name = "x-version:";
  if (line.size() >= name.size() &&
      std::equal(name.begin(), name.end(), line.begin(),
                 [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
    result->x_version = line.substr(name.size());
    result->x_version.erase(0, result->x_version.find_first_not_of(' '));
  }
  return size * count;
}

HttpResult httpGet(int port, const std::string& path) {
  HttpResult result;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return result;
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, appendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, readHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) result.content_type = type;
  }
  curl_easy_cleanup(curl);
  return result;
}

// flotilla-demo-service as a child process, its stdout on a pipe.
class DemoProcess {
 public:
  DemoProcess() = default;
  DemoProcess(const DemoProcess&) = delete;
  DemoProcess& operator=(const DemoProcess&) = delete;
  ~DemoProcess() { killHard(); }

  // Spawns the binary and reads its stdout up to the first line (or end of file).
  ::testing::AssertionResult spawn(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << "pipe failed";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    // The child starts with default signal handling whatever this process has set up.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> argv_storage = {DEMO_SERVICE_BINARY};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(argv_storage.size() + 1);
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    started_ = Steady::now();
    const int rc = posix_spawn(&pid_, DEMO_SERVICE_BINARY, &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    out_fd_ = fds[0];
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "posix_spawn: " << std::strerror(rc);
    }
    first_line_ = readFirstLine();
    return ::testing::AssertionSuccess();
  }

  // Spawns and expects the "listening" line, which gives the port.
  ::testing::AssertionResult start(const std::vector<std::string>& args) {
    auto spawned = spawn(args);
    if (!spawned) return spawned;
    const std::string prefix = "listening on 127.0.0.1:";
    const std::string line = first_line_.value_or("");
    const std::size_t digits_end = line.find_first_not_of("0123456789", prefix.size());
    const bool ok = line.starts_with(prefix) && digits_end != std::string::npos &&
                    digits_end > prefix.size() && line.compare(digits_end, 9, " version ") == 0 &&
                    line.size() > digits_end + 9 &&
                    line.find(' ', digits_end + 9) == std::string::npos;
    if (!ok) {
      return ::testing::AssertionFailure()
             << "no listening line; got \"" << first_line_.value_or("<nothing>") << "\"";
    }
    port_ = std::stoi(line.substr(prefix.size(), digits_end - prefix.size()));
    if (port_ <= 0 || port_ > 65535) return ::testing::AssertionFailure() << "bad port";
    return ::testing::AssertionSuccess();
  }

  // Waits for the child to exit; its wait status, or nothing at the deadline.
  std::optional<int> waitExit() {
    const auto deadline = Steady::now() + kDeadline;
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (r < 0 || Steady::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }

  void signal(int signo) {
    if (pid_ > 0) ::kill(pid_, signo);
  }

  // Whatever state it is in: SIGKILL by PID and reap.
  void killHard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) {
      close(out_fd_);
      out_fd_ = -1;
    }
  }

  // Everything the child writes to stdout, up to its end of file.
  std::string readToEnd() {
    readUntil([](const std::string&) { return false; });
    return output_;
  }

  int port() const { return port_; }
  const std::optional<std::string>& firstLine() const { return first_line_; }
  Steady::time_point started() const { return started_; }

 private:
  // Reads until `done(output_)` or end of file or the deadline; false unless done.
  template <typename Done>
  bool readUntil(Done done) {
    const auto deadline = Steady::now() + kDeadline;
    while (!done(output_) && Steady::now() < deadline) {
      pollfd pfd{out_fd_, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) break;
      char buf[4096];
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      output_.append(buf, static_cast<size_t>(n));
    }
    return done(output_);
  }

  std::optional<std::string> readFirstLine() {
    readUntil([](const std::string& text) { return text.find('\n') != std::string::npos; });
    if (output_.empty()) return std::nullopt;
    return output_.substr(0, output_.find('\n'));
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  std::string output_;  // stdout so far
  std::optional<std::string> first_line_;
  Steady::time_point started_;
};

class DemoBinaryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  // Every test's service goes, by PID, whatever the test did or failed to do.
  void TearDown() override { service_.killHard(); }

  ParsedMetrics scrape() {
    const HttpResult r = httpGet(service_.port(), "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, kMetricsContentType);
    ParsedMetrics m;
    EXPECT_TRUE(parseMetrics(r.body, m)) << r.body;
    return m;
  }

  DemoProcess service_;
};

TEST_F(DemoBinaryTest, HundredRequestsFailExactlyTwentyPercentAndMetricsCountThem) {
  ASSERT_TRUE(service_.start({"--port", "0", "--version", "2.0.0-errors", "--error-rate", "0.2"}));
  std::map<long, int> codes;
  for (int i = 0; i < 100; ++i) {
    const HttpResult r = httpGet(service_.port(), "/");
    ++codes[r.status];
    EXPECT_EQ(r.x_version, "2.0.0-errors");
    if (r.status == 200) {
      EXPECT_EQ(r.body, "checkout 2.0.0-errors\n");
    }
  }
  EXPECT_EQ(codes, (std::map<long, int>{{200, 80}, {500, 20}}));

  const ParsedMetrics m = scrape();
  EXPECT_EQ(requests(m, "200"), 80);
  EXPECT_EQ(requests(m, "500"), 20);
  EXPECT_EQ(m.find("http_request_duration_seconds_count"), 100);
  EXPECT_EQ(bucket(m, "+Inf"), 100);
  EXPECT_GT(m.find("http_request_duration_seconds_sum").value_or(-1), 0);
  EXPECT_EQ(m.find("demo_build_info", {{"version", "2.0.0-errors"}}), 1);
  const double started = m.find("process_start_time_seconds").value_or(0);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(started, now, 60);
}

TEST_F(DemoBinaryTest, HealthFlipsTo503AfterFailAfter) {
  ASSERT_TRUE(service_.start({"--port", "0", "--health-fail-after", "300ms"}));
  HttpResult first = httpGet(service_.port(), "/health");
  ASSERT_EQ(first.status, 200) << "already failing " << first.body;
  EXPECT_EQ(first.body, "{\"status\":\"ok\",\"version\":\"1.0.0\"}\n");
  EXPECT_EQ(first.x_version, "1.0.0");

  std::optional<Steady::duration> flipped;
  const auto deadline = Steady::now() + kDeadline;
  while (!flipped && Steady::now() < deadline) {
    const HttpResult r = httpGet(service_.port(), "/health");
    if (r.status == 503) {
      flipped = Steady::now() - service_.started();
      EXPECT_EQ(r.body, "{\"status\":\"failing\",\"version\":\"1.0.0\"}\n");
    } else {
      ASSERT_EQ(r.status, 200);
      std::this_thread::sleep_for(10ms);
    }
  }
  ASSERT_TRUE(flipped) << "never answered 503";
  EXPECT_GE(*flipped, 300ms);  // the service started after the spawn, so this is a lower bound
  EXPECT_EQ(httpGet(service_.port(), "/health").status, 503);
  EXPECT_EQ(httpGet(service_.port(), "/").status, 200);  // only health fails
}

TEST_F(DemoBinaryTest, ManifestMakesAVersionSlowAndFlagsOverrideIt) {
  const std::string manifest =
      ::testing::TempDir() + "/demo_service_test_slow_" + std::to_string(getpid()) + ".json";
  std::ofstream(manifest) << R"({"error_rate": 0.5, "latency_ms": 30})";
  ASSERT_TRUE(service_.start(
      {"--port", "0", "--version", "2.0.0-slow", "--manifest", manifest, "--error-rate", "0"}));
  for (int i = 0; i < 10; ++i) {
    const auto before = Steady::now();
    EXPECT_EQ(httpGet(service_.port(), "/").status, 200);  // the flag's 0 beats the manifest
    EXPECT_GE(Steady::now() - before, 30ms);
  }
  const ParsedMetrics m = scrape();
  EXPECT_EQ(requests(m, "200"), 10);
  EXPECT_EQ(bucket(m, "0.025"), 0);  // every request took at least 30ms
  EXPECT_EQ(bucket(m, "+Inf"), 10);
  std::filesystem::remove(manifest);
}

TEST_F(DemoBinaryTest, ExitsCleanlyOnSigtermRightAfterStarting) {
  ASSERT_TRUE(service_.start({"--port", "0"}));
  service_.signal(SIGTERM);  // before the accept loop may even have started
  const auto status = service_.waitExit();
  ASSERT_TRUE(status) << "still running after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(DemoBinaryTest, ExitsCleanlyOnSigintAfterServing) {
  ASSERT_TRUE(service_.start({"--port", "0", "--latency-ms", "5", "--latency-jitter-ms", "5"}));
  for (int i = 0; i < 5; ++i) ASSERT_EQ(httpGet(service_.port(), "/").status, 200);
  service_.signal(SIGINT);
  const auto status = service_.waitExit();
  ASSERT_TRUE(status) << "still running after SIGINT";
  EXPECT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_EQ(httpGet(service_.port(), "/").status, 0);  // nobody listens any more
}

TEST_F(DemoBinaryTest, RejectsBadConfigurationBeforeListening) {
  const std::vector<std::vector<std::string>> cases = {
      {},  // --port is required
      {"--port", "0", "--error-rate", "1.5"},
      {"--port", "0", "--latency-ms", "-5"},
      {"--port", "0", "--health-fail-after", "5"},
      {"--port", "0", "--version", "has space"},
      {"--port", "0", "--manifest", "/nonexistent/manifest.json"},
      {"--port", "70000"},
  };
  for (const auto& args : cases) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    DemoProcess process;
    ASSERT_TRUE(process.spawn(args)) << joined;
    EXPECT_FALSE(process.firstLine()) << joined << "-> " << *process.firstLine();
    const auto status = process.waitExit();
    ASSERT_TRUE(status) << joined;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << joined;
  }
}

TEST_F(DemoBinaryTest, HelpNamesEveryFlag) {
  DemoProcess process;
  ASSERT_TRUE(process.spawn({"--help"}));
  const std::string help = process.readToEnd();
  const auto status = process.waitExit();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  for (const char* text : {"--port", "--host", "--version", "--error-rate", "--latency-ms",
                           "--latency-jitter-ms", "--health-fail-after", "--manifest",
                           "--log-level", "health_fail_after_ms", "20 of every 100"}) {
    EXPECT_NE(help.find(text), std::string::npos) << text << " missing from:\n" << help;
  }
}

}  // namespace
}  // namespace flotilla::demo
