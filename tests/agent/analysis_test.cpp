// Tests for the metric analysis core (agent/analysis.cpp): exposition parsing, window deltas,
// p95 interpolation, canary verdicts, alerts, health-check counting and /proc readings.
#include "agent/analysis.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace flotilla::agent {
namespace {

using std::chrono::seconds;

MetricSamples parseOk(std::string_view text) {
  auto parsed = parsePrometheusText(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().toString();
  return parsed.ok() ? *parsed : MetricSamples{};
}

std::string parseError(std::string_view text) {
  auto parsed = parsePrometheusText(text);
  EXPECT_FALSE(parsed.ok()) << "parsed without error: " << text;
  if (parsed.ok()) return "";
  EXPECT_TRUE(parsed.status().isInvalidArgument()) << parsed.status().toString();
  return parsed.status().message();
}

// ---------------------------------------------------------------------------------------------
// Parser

constexpr std::string_view kRealExposition =
    R"(# HELP http_requests_total Requests served, by status code.
# TYPE http_requests_total counter
http_requests_total{code="200",method="GET"} 1027
http_requests_total{code="500",method="GET"} 3 1395066363000

# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# A free-form comment that is not HELP or TYPE.
process_resident_memory_bytes 2.3068672e+07
go_gc_duration_seconds{quantile="0.5"} 1.7560473e-05
)";

TEST(ParsePrometheusTextTest, RealExposition) {
  MetricSamples s = parseOk(kRealExposition);
  ASSERT_EQ(s.size(), 10u);
  EXPECT_EQ(s[0].name, "http_requests_total");
  EXPECT_EQ(s[0].labels, (Labels{{"code", "200"}, {"method", "GET"}}));
  EXPECT_EQ(s[0].value, 1027);
  EXPECT_FALSE(s[0].timestamp_ms.has_value());
  EXPECT_EQ(s[1].timestamp_ms, 1395066363000);
  EXPECT_EQ(s[5].labels.at("le"), "+Inf");
  EXPECT_EQ(s[6].name, "http_request_duration_seconds_sum");
  EXPECT_TRUE(s[6].labels.empty());
  EXPECT_DOUBLE_EQ(s[8].value, 2.3068672e+07);
  EXPECT_DOUBLE_EQ(s[9].value, 1.7560473e-05);
}

TEST(ParsePrometheusTextTest, SpecialAndScientificValues) {
  MetricSamples s = parseOk(
      "a +Inf\n"
      "b -Inf\n"
      "c NaN\n"
      "d 1e3\n"
      "e -2.5E-2\n"
      "f +7\n"
      "g 0\n"
      "h .5\n"
      "i 1.7976931348623157e308\n");
  ASSERT_EQ(s.size(), 9u);
  EXPECT_TRUE(std::isinf(s[0].value) && s[0].value > 0);
  EXPECT_TRUE(std::isinf(s[1].value) && s[1].value < 0);
  EXPECT_TRUE(std::isnan(s[2].value));
  EXPECT_EQ(s[3].value, 1000);
  EXPECT_DOUBLE_EQ(s[4].value, -0.025);
  EXPECT_EQ(s[5].value, 7);
  EXPECT_EQ(s[6].value, 0);
  EXPECT_EQ(s[7].value, 0.5);
  EXPECT_EQ(s[8].value, std::numeric_limits<double>::max());
}

TEST(ParsePrometheusTextTest, Timestamps) {
  MetricSamples s = parseOk("a 1 1700000000000\nb 2 -5\nc 3   \t 42  \nd 4 +8\n");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].timestamp_ms, 1700000000000);
  EXPECT_EQ(s[1].timestamp_ms, -5);
  EXPECT_EQ(s[2].timestamp_ms, 42);
  EXPECT_EQ(s[3].timestamp_ms, 8);
}

TEST(ParsePrometheusTextTest, EscapedLabelValues) {
  MetricSamples s = parseOk(R"(m{path="C:\\dir\\",msg="say \"hi\"\nbye",empty=""} 1)");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].labels.at("path"), "C:\\dir\\");
  EXPECT_EQ(s[0].labels.at("msg"), "say \"hi\"\nbye");
  EXPECT_EQ(s[0].labels.at("empty"), "");
}

TEST(ParsePrometheusTextTest, LabelValuesKeepSpecialCharacters) {
  MetricSamples s = parseOk("m{a=\"x,y}=z # w\",b=\"h\xC3\xA9\"} 2\n");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].labels.at("a"), "x,y}=z # w");
  EXPECT_EQ(s[0].labels.at("b"), "h\xC3\xA9");
}

TEST(ParsePrometheusTextTest, BlanksCommentsAndLayoutVariants) {
  MetricSamples s = parseOk(
      "\n"
      "   \n"
      "#\n"
      "# just words\n"
      "  # indented comment\n"
      "# HELP x\n"
      "# HELP x docs with \\\\ and \\n escapes\n"
      "# TYPE x untyped\n"
      "x{} 1\n"
      "y{a=\"1\",} 2\n"
      "z { a = \"1\" , b=\"2\" } 3\r\n"
      "\tw:sub_1\t4\t\n"
      "v{a=\"1\"}5\n"
      "last 6");  // no final newline
  ASSERT_EQ(s.size(), 6u);
  EXPECT_TRUE(s[0].labels.empty());
  EXPECT_EQ(s[1].labels, (Labels{{"a", "1"}}));
  EXPECT_EQ(s[2].labels, (Labels{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(s[2].value, 3);
  EXPECT_EQ(s[3].name, "w:sub_1");
  EXPECT_EQ(s[3].value, 4);
  EXPECT_EQ(s[4].value, 5);
  EXPECT_EQ(s[5].name, "last");
}

TEST(ParsePrometheusTextTest, EmptyInputIsNoSamples) {
  EXPECT_TRUE(parseOk("").empty());
  EXPECT_TRUE(parseOk("\n\n# only comments\n").empty());
}

TEST(ParsePrometheusTextTest, BadLinesReportLineAndColumn) {
  const std::string head = "# TYPE a counter\na 1\n";
  struct Case {
    std::string line;
    std::string expected;  // a substring of the message
  };
  const std::vector<Case> cases = {
      {"b", "line 3, column 2: expected a blank or '{'"},
      {"b ", "line 3, column 2: expected a blank or '{'"},  // the trailing blank is trimmed
      {"b abc", "line 3, column 3: sample value is not a number"},
      {"b 1 2 3", "line 3, column 7: unexpected text after the timestamp"},
      {"b 1 1.5", "line 3, column 5: timestamp is not an integer"},
      {"b 1e999", "line 3, column 3: sample value is not a number"},
      {"b ++1", "not a number"},
      {"b 0x10", "not a number"},
      {"b-1 2", "line 3, column 2: expected a blank or '{'"},
      {"1b 2", "line 3, column 1: expected a metric name"},
      {"{a=\"1\"} 2", "line 3, column 1: expected a metric name"},
      {"b{a=\"1\" 2", "line 3, column 9: expected ',' or '}'"},
      {"b{a=\"1} 2", "line 3, column 10: unterminated label value"},
      {"b{a=\"\\t\"} 2", "line 3, column 6: invalid escape"},
      {"b{a=\"x\\", "unterminated label value"},
      {"b{a} 2", "line 3, column 4: expected '='"},
      {"b{a=1} 2", "line 3, column 5: expected '\"'"},
      {"b{1a=\"x\"} 2", "line 3, column 3: expected a label name"},
      {"b{,} 2", "line 3, column 3: expected a label name"},
      {"b{a=\"1\",a=\"2\"} 3", "line 3, column 9: duplicate label name"},
      {"b{a=\"1\"", "line 3, column 8: unterminated label set"},
      {"b{a=\"1\"}", "line 3, column 9: expected a sample value"},
      {"b{a=\"\xff\"} 1", "line 3, column 6: label value is not valid UTF-8"},
      {"b{a=\"\xC0\xAF\"} 1", "not valid UTF-8"},      // overlong '/'
      {"b{a=\"\xED\xA0\x80\"} 1", "not valid UTF-8"},  // a UTF-16 surrogate
      {"b{a=\"\xE2\x82\"} 1", "not valid UTF-8"},      // truncated sequence
      {std::string("b\0 1", 4), "line 3, column 2"},
      {"# TYPE", "line 3, column 7: expected a metric name after TYPE"},
      {"# HELP 9x", "line 3, column 8: expected a metric name after HELP"},
      {"# TYPE b bogus", "line 3, column 10: TYPE must be counter"},
      {"# TYPE b", "TYPE must be counter"},
      {"# TYPE b counter extra", "line 3, column 18: unexpected text after the TYPE"},
      {"# TYPE b-c counter", "line 3, column 9: invalid character in metric name"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const std::string msg = parseError(head + c.line + "\nc 1\n");
    EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
  }
}

TEST(ParsePrometheusTextTest, ErrorsDoNotEchoInput) {
  const std::string msg = parseError("secret_token_abc{x=\"y\" 1\n");
  EXPECT_EQ(msg.find("secret"), std::string::npos) << msg;
}

TEST(ParsePrometheusTextTest, RefusesOversizedExposition) {
  std::string big(kMaxExpositionBytes + 1, '#');
  const std::string msg = parseError(big);
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;

  // Exactly at the limit is read: one enormous label value.
  std::string edge = "m{a=\"";
  edge.append(kMaxExpositionBytes - edge.size() - 5, 'x');
  edge += "\"} 1";
  edge += '\n';
  ASSERT_EQ(edge.size(), kMaxExpositionBytes);
  MetricSamples s = parseOk(edge);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].labels.at("a").size(), kMaxExpositionBytes - 10);
}

TEST(ParsePrometheusTextTest, RefusesTooManySamples) {
  std::string text;
  for (std::size_t i = 0; i < kMaxSamples; ++i) text += "a 1\n";
  EXPECT_EQ(parseOk(text).size(), kMaxSamples);
  text += "# comments do not count\n";
  EXPECT_EQ(parseOk(text).size(), kMaxSamples);
  text += "a 1\n";
  const std::string msg = parseError(text);
  EXPECT_NE(msg.find("line 100002: more than 100000 samples"), std::string::npos) << msg;
}

TEST(ParsePrometheusTextTest, RefusesTooManyLabels) {
  auto labels = [](std::size_t n) {
    std::string text = "m{";
    for (std::size_t i = 0; i < n; ++i) text += "l" + std::to_string(i) + "=\"v\",";
    return text + "} 1\n";
  };
  EXPECT_EQ(parseOk(labels(kMaxLabelsPerSample)).at(0).labels.size(), kMaxLabelsPerSample);
  EXPECT_NE(parseError(labels(kMaxLabelsPerSample + 1)).find("more than 64 labels"),
            std::string::npos);
}

TEST(ParsePrometheusTextTest, RefusesTooManyLabelsInTotal) {
  // 20 labels a line: the budget runs out on line kMaxLabelPairs / 20 + 1.
  std::string line = "m{";
  for (int i = 0; i < 20; ++i) line += "l" + std::to_string(i) + "=\"\",";
  line += "} 1\n";
  std::string text;
  for (std::size_t i = 0; i < kMaxLabelPairs / 20; ++i) text += line;
  EXPECT_EQ(parseOk(text).size(), kMaxLabelPairs / 20);
  text += line;
  const std::string msg = parseError(text);
  EXPECT_NE(msg.find("line 25001: more than 500000 labels in total"), std::string::npos) << msg;
}

// Random and mutated input must only ever produce a sample list or an error.
TEST(ParsePrometheusTextTest, SurvivesGarbage) {
  std::mt19937 rng(12345);
  const std::string alphabet = "ab_:09.+-eEInfNa{}\",=\\ \t\r\n#\x80\xff";
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    const std::size_t len = rng() % 120;
    for (std::size_t i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    auto parsed = parsePrometheusText(text);
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().message().rfind("line ", 0), 0u);
    }
  }
  const std::string real(kRealExposition);
  for (int round = 0; round < 3000; ++round) {
    std::string text = real;
    for (int flips = 0; flips < 3; ++flips) {
      text[rng() % text.size()] = static_cast<char>(rng() % 256);
    }
    auto parsed = parsePrometheusText(text);
    if (parsed.ok()) {
      EXPECT_LE(parsed->size(), 20u);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Window statistics

// One replica's /metrics with the default names; bucket counts are cumulative, for
// le = 0.05, 0.1, 0.25, 0.5, 1, +Inf.
std::string replica(double ok, double errors, const std::vector<double>& buckets) {
  static const char* const kLe[] = {"0.05", "0.1", "0.25", "0.5", "1", "+Inf"};
  std::string text =
      "# TYPE http_requests_total counter\n"
      "http_requests_total{code=\"200\",method=\"GET\"} " +
      std::to_string(ok) + "\n";
  if (errors >= 0) {
    text += "http_requests_total{code=\"500\",method=\"GET\"} " + std::to_string(errors) + "\n";
  }
  text += "# TYPE http_request_duration_seconds histogram\n";
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    text += std::string("http_request_duration_seconds_bucket{le=\"") + kLe[i] + "\"} " +
            std::to_string(buckets[i]) + "\n";
  }
  return text;
}

WindowStats stats(const std::string& before, const std::string& after,
                  std::chrono::nanoseconds window = seconds(10),
                  const MetricNames& names = MetricNames{}) {
  auto s = computeWindowStats(parseOk(before), parseOk(after), window, names);
  EXPECT_TRUE(s.ok()) << s.status().toString();
  return s.ok() ? *s : WindowStats{};
}

TEST(WindowStatsTest, DeltasRatesAndP95) {
  // Bucket deltas: 50, 100, 100, 100, 100, 100. Rank 95 of 100 falls in (0.05, 0.1], which
  // holds observations 51..100: 0.05 + 0.05 * (95 - 50) / 50 = 0.095.
  WindowStats w = stats(replica(1000, 10, {10, 20, 30, 40, 50, 50}),
                        replica(1080, 30, {60, 120, 130, 140, 150, 150}), seconds(20));
  EXPECT_EQ(w.requests, 100u);
  EXPECT_EQ(w.errors, 20u);
  EXPECT_DOUBLE_EQ(w.error_rate, 0.2);
  EXPECT_DOUBLE_EQ(w.request_rate, 5.0);
  ASSERT_TRUE(w.latency_p95.has_value());
  EXPECT_NEAR(*w.latency_p95, 0.095, 1e-12);
  EXPECT_EQ(w.restarts, 0);
  EXPECT_EQ(w.window, seconds(20));
  EXPECT_EQ(w.latency_buckets.size(), 6u);
  EXPECT_EQ(w.latency_buckets.at(0.05), 50);
  EXPECT_EQ(w.latency_buckets.at(std::numeric_limits<double>::infinity()), 100);
}

TEST(WindowStatsTest, P95InterpolatesInsideTheBucket) {
  // Deltas 0, 10, 60, 90, 100, 100: rank 95 lies in (0.5, 1] holding 91..100, 5 of 10 in.
  WindowStats w =
      stats(replica(0, 0, {0, 0, 0, 0, 0, 0}), replica(100, 0, {0, 10, 60, 90, 100, 100}));
  ASSERT_TRUE(w.latency_p95.has_value());
  EXPECT_NEAR(*w.latency_p95, 0.75, 1e-12);
}

TEST(WindowStatsTest, SeriesThatAppearDuringTheWindowCountInFull) {
  // No code="500" series before: clients create it on the first error.
  WindowStats w = stats(replica(100, -1, {}), replica(150, 5, {}));
  EXPECT_EQ(w.requests, 55u);
  EXPECT_EQ(w.errors, 5u);
  EXPECT_FALSE(w.latency_p95.has_value());  // no histogram at all
}

TEST(WindowStatsTest, ErrorsAreFiveHundredsAcrossAllLabels) {
  const std::string before =
      "http_requests_total{code=\"200\",path=\"/\"} 0\n"
      "http_requests_total{code=\"503\",path=\"/\"} 0\n"
      "http_requests_total{code=\"5xx\",path=\"/a\"} 0\n"
      "http_requests_total{code=\"404\",path=\"/\"} 0\n"
      "http_requests_total{code=\"50\",path=\"/\"} 0\n"
      "http_requests_total{path=\"/nocode\"} 0\n";
  const std::string after =
      "http_requests_total{code=\"200\",path=\"/\"} 10\n"
      "http_requests_total{code=\"503\",path=\"/\"} 2\n"
      "http_requests_total{code=\"5xx\",path=\"/a\"} 3\n"
      "http_requests_total{code=\"404\",path=\"/\"} 4\n"
      "http_requests_total{code=\"50\",path=\"/\"} 5\n"
      "http_requests_total{path=\"/nocode\"} 6\n"
      "other_total{code=\"500\"} 1000\n";
  WindowStats w = stats(before, after);
  EXPECT_EQ(w.requests, 30u);
  EXPECT_EQ(w.errors, 5u);
}

TEST(WindowStatsTest, CounterResetMeansRestartAndUsesAfterValues) {
  // The 200 series went backwards: the replica restarted, so the 500 series (which happened to
  // climb back past its old value) counts its after value too, not 20 - 10.
  WindowStats w = stats(replica(1000, 10, {500, 900, 1000, 1010, 1010, 1010}),
                        replica(50, 20, {60, 70, 70, 70, 70, 70}));
  EXPECT_EQ(w.restarts, 1);
  EXPECT_EQ(w.requests, 70u);
  EXPECT_EQ(w.errors, 20u);
  EXPECT_EQ(w.latency_buckets.at(0.05), 60);
  // Rank 66.5 of 70 lies in (0.05, 0.1] holding 61..70: 0.05 + 0.05 * 6.5 / 10.
  ASSERT_TRUE(w.latency_p95.has_value());
  EXPECT_NEAR(*w.latency_p95, 0.0825, 1e-12);
}

TEST(WindowStatsTest, HistogramResetAloneAlsoCountsAsRestart) {
  WindowStats w = stats(replica(10, 0, {5, 5, 5, 5, 10, 10}), replica(30, 0, {1, 1, 1, 1, 20, 20}));
  EXPECT_EQ(w.restarts, 1);
  EXPECT_EQ(w.requests, 30u);
}

TEST(WindowStatsTest, ConfigurableNames) {
  MetricNames names;
  names.requests_total = "api_calls_total";
  names.duration_seconds = "api_latency_seconds";
  names.code_label = "status";
  const std::string before =
      "api_calls_total{status=\"200\"} 0\n"
      "api_latency_seconds_bucket{le=\"1\"} 0\n"
      "api_latency_seconds_bucket{le=\"+Inf\"} 0\n";
  const std::string after =
      "api_calls_total{status=\"200\"} 30\n"
      "api_calls_total{status=\"502\"} 10\n"
      "http_requests_total{code=\"500\"} 99\n"
      "api_latency_seconds_bucket{le=\"1\"} 40\n"
      "api_latency_seconds_bucket{le=\"+Inf\"} 40\n";
  WindowStats w = stats(before, after, seconds(10), names);
  EXPECT_EQ(w.requests, 40u);
  EXPECT_EQ(w.errors, 10u);
  ASSERT_TRUE(w.latency_p95.has_value());
  EXPECT_NEAR(*w.latency_p95, 0.95, 1e-12);
}

TEST(WindowStatsTest, RefusesUnusableInput) {
  const MetricSamples good = parseOk(replica(1, 0, {}));
  auto bad = [&](const std::string& after) {
    auto w = computeWindowStats(good, parseOk(after), seconds(1));
    EXPECT_FALSE(w.ok());
    return w.ok() ? std::string() : w.status().toString();
  };
  EXPECT_NE(bad("http_requests_total{code=\"200\"} NaN\n").find("Corruption"), std::string::npos);
  EXPECT_NE(bad("http_requests_total{code=\"200\"} -1\n").find("not a counter"), std::string::npos);
  EXPECT_NE(bad("http_requests_total{code=\"200\"} +Inf\n").find("not a counter"),
            std::string::npos);
  EXPECT_NE(bad("http_requests_total{code=\"200\"} 1\nhttp_requests_total{code=\"200\"} 2\n")
                .find("duplicate"),
            std::string::npos);
  EXPECT_NE(bad("http_request_duration_seconds_bucket 1\n").find("le"), std::string::npos);
  EXPECT_NE(bad("http_request_duration_seconds_bucket{le=\"fast\"} 1\n").find("le"),
            std::string::npos);
  EXPECT_NE(bad("http_request_duration_seconds_bucket{le=\"NaN\"} 1\n").find("le"),
            std::string::npos);

  auto zero = computeWindowStats(good, good, seconds(0));
  EXPECT_TRUE(!zero.ok() && zero.status().isInvalidArgument());
  // Gauges with NaN under other names are none of our business.
  EXPECT_TRUE(computeWindowStats(good, parseOk("temperature NaN\n"), seconds(1)).ok());
}

TEST(HistogramQuantileTest, HandComputedValues) {
  const double inf = std::numeric_limits<double>::infinity();
  // Rank 95 lies in (0.2, 0.5] holding 91..100: 0.2 + 0.3 * 5 / 10.
  EXPECT_NEAR(*histogramQuantile(0.95, {{0.1, 50}, {0.2, 90}, {0.5, 100}, {inf, 100}}), 0.35,
              1e-12);
  // The median sits exactly on a bucket's upper bound.
  EXPECT_NEAR(*histogramQuantile(0.5, {{0.1, 50}, {0.2, 90}, {0.5, 100}, {inf, 100}}), 0.1, 1e-12);
  // All in the first bucket: interpolated from zero.
  EXPECT_NEAR(*histogramQuantile(0.95, {{0.1, 100}, {inf, 100}}), 0.095, 1e-12);
  // Rank in the +Inf bucket: the highest finite bound, as Prometheus does.
  EXPECT_EQ(*histogramQuantile(0.95, {{0.1, 10}, {0.2, 20}, {inf, 100}}), 0.2);
  // Non-monotonic counts (merged replicas) are lifted to the running maximum.
  EXPECT_NEAR(*histogramQuantile(0.95, {{0.1, 50}, {0.2, 40}, {0.5, 100}, {inf, 100}}), 0.47,
              1e-12);
}

TEST(HistogramQuantileTest, NoAnswerWithoutData) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(histogramQuantile(0.95, {}).has_value());
  EXPECT_FALSE(histogramQuantile(0.95, {{inf, 10}}).has_value());
  EXPECT_FALSE(histogramQuantile(0.95, {{0.1, 5}, {0.2, 10}}).has_value());  // no +Inf
  EXPECT_FALSE(histogramQuantile(0.95, {{0.1, 0}, {inf, 0}}).has_value());
  EXPECT_FALSE(histogramQuantile(1.5, {{0.1, 5}, {inf, 10}}).has_value());
  EXPECT_FALSE(histogramQuantile(std::nan(""), {{0.1, 5}, {inf, 10}}).has_value());
}

TEST(AggregateTest, SumsCountsAndMergesBucketsBeforeP95) {
  const std::vector<double> zero = {0, 0, 0, 0, 0, 0};
  // Fast replica: p95 = 0.05 + 0.05 * 5 / 10 = 0.075. Slow one: 0.5 + 0.5 * 0.95 = 0.975.
  WindowStats fast = stats(replica(0, 0, zero), replica(95, 5, {90, 100, 100, 100, 100, 100}));
  WindowStats slow = stats(replica(0, 0, zero), replica(100, 0, {0, 0, 0, 0, 100, 100}));
  ASSERT_NEAR(*fast.latency_p95, 0.075, 1e-12);
  ASSERT_NEAR(*slow.latency_p95, 0.975, 1e-12);
  slow.restarts = 1;

  WindowStats all = aggregate({fast, slow});
  EXPECT_EQ(all.requests, 200u);
  EXPECT_EQ(all.errors, 5u);
  EXPECT_DOUBLE_EQ(all.error_rate, 0.025);
  EXPECT_DOUBLE_EQ(all.request_rate, 20.0);
  EXPECT_EQ(all.window, seconds(10));
  EXPECT_EQ(all.restarts, 1);
  // Merged: 90, 100, 100, 100, 200, 200. Rank 190 lies in (0.5, 1] holding 101..200:
  // 0.5 + 0.5 * 90 / 100 = 0.95, not the 0.525 an average of p95s would claim.
  ASSERT_TRUE(all.latency_p95.has_value());
  EXPECT_NEAR(*all.latency_p95, 0.95, 1e-12);

  WindowStats none = aggregate({});
  EXPECT_EQ(none.requests, 0u);
  EXPECT_EQ(none.error_rate, 0);
  EXPECT_FALSE(none.latency_p95.has_value());
}

// ---------------------------------------------------------------------------------------------
// Canary analysis

WindowStats synthetic(uint64_t requests, uint64_t errors, std::optional<double> p95) {
  WindowStats w;
  w.requests = requests;
  w.errors = errors;
  w.error_rate = requests == 0 ? 0 : static_cast<double>(errors) / static_cast<double>(requests);
  w.latency_p95 = p95;
  w.window = seconds(60);
  w.request_rate = static_cast<double>(requests) / 60;
  return w;
}

const Finding* findRule(const std::vector<Finding>& findings, const std::string& rule) {
  for (const Finding& f : findings) {
    if (f.rule == rule) return &f;
  }
  return nullptr;
}

TEST(AnalyzeTest, TwentyPercentErrorsAgainstNoneFails) {
  AnalysisResult r = analyze(synthetic(100, 20, 0.1), synthetic(900, 0, 0.1), AnalysisConfig{});
  EXPECT_EQ(r.verdict, Verdict::kFail);
  ASSERT_EQ(r.findings.size(), 3u);
  const Finding* e = findRule(r.findings, "error_rate");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->crossed);
  EXPECT_DOUBLE_EQ(e->canary, 0.2);
  EXPECT_DOUBLE_EQ(e->baseline, 0);
  EXPECT_DOUBLE_EQ(e->threshold, 0.01);  // the floor, since the baseline had no errors
  EXPECT_EQ(e->message.rfind("error rate 0.200 vs baseline 0.000: over the +50% limit", 0), 0u)
      << e->message;
  EXPECT_FALSE(findRule(r.findings, "latency_p95")->crossed);
  EXPECT_FALSE(findRule(r.findings, "min_requests")->crossed);
}

TEST(AnalyzeTest, ThreeTimesSlowerFailsOnLatency) {
  AnalysisResult r = analyze(synthetic(100, 0, 0.3), synthetic(900, 0, 0.1), AnalysisConfig{});
  EXPECT_EQ(r.verdict, Verdict::kFail);
  const Finding* l = findRule(r.findings, "latency_p95");
  ASSERT_NE(l, nullptr);
  EXPECT_TRUE(l->crossed);
  EXPECT_DOUBLE_EQ(l->canary, 0.3);
  EXPECT_DOUBLE_EQ(l->baseline, 0.1);
  EXPECT_DOUBLE_EQ(l->threshold, 0.2);
  EXPECT_EQ(l->message,
            "p95 latency 0.300s vs baseline 0.100s: over the 2x limit (threshold 0.200s)");
  EXPECT_FALSE(findRule(r.findings, "error_rate")->crossed);
}

TEST(AnalyzeTest, EqualVersionsPass) {
  AnalysisResult r = analyze(synthetic(100, 2, 0.1), synthetic(900, 18, 0.1), AnalysisConfig{});
  EXPECT_EQ(r.verdict, Verdict::kPass);
  ASSERT_EQ(r.findings.size(), 3u);
  for (const Finding& f : r.findings) EXPECT_FALSE(f.crossed) << f.message;
  EXPECT_EQ(findRule(r.findings, "error_rate")->message,
            "error rate 0.020 vs baseline 0.020: within the +50% limit (threshold 0.030)");
}

TEST(AnalyzeTest, ThresholdsAreStrict) {
  // Exactly 2x and exactly +50% are still within the limits (values exact in binary).
  EXPECT_EQ(analyze(synthetic(200, 75, 0.25), synthetic(100, 25, 0.125), AnalysisConfig{}).verdict,
            Verdict::kPass);
  EXPECT_EQ(analyze(synthetic(200, 76, 0.125), synthetic(100, 25, 0.125), AnalysisConfig{}).verdict,
            Verdict::kFail);
  EXPECT_EQ(analyze(synthetic(200, 0, 0.2501), synthetic(100, 0, 0.125), AnalysisConfig{}).verdict,
            Verdict::kFail);
}

// The limits reported with each window's figures are the thresholds analyze() applies.
TEST(AnalyzeTest, LimitsAreTheThresholdsTheVerdictUses) {
  AnalysisConfig cfg;
  WindowStats base;
  base.requests = 400;
  base.error_rate = 0.04;
  base.latency_p95 = 0.010;
  EXPECT_DOUBLE_EQ(errorRateLimit(base, cfg), 0.06);  // 0.04 * (1 + 0.5)
  ASSERT_TRUE(latencyP95Limit(base, cfg).has_value());
  EXPECT_DOUBLE_EQ(*latencyP95Limit(base, cfg), 0.020);
  base.error_rate = 0;
  EXPECT_DOUBLE_EQ(errorRateLimit(base, cfg), cfg.min_error_rate);  // the floor
  WindowStats canary = base;
  canary.error_rate = errorRateLimit(base, cfg);
  EXPECT_EQ(analyze(canary, base, cfg).verdict, Verdict::kPass) << "at the limit passes";
  canary.error_rate += 0.001;
  EXPECT_EQ(analyze(canary, base, cfg).verdict, Verdict::kFail);
  base.latency_p95.reset();
  EXPECT_FALSE(latencyP95Limit(base, cfg).has_value());
}

TEST(AnalyzeTest, TooFewRequestsIsInconclusiveNeverPass) {
  for (const auto& [canary, baseline] :
       std::vector<std::pair<uint64_t, uint64_t>>{{19, 1000}, {1000, 19}, {0, 0}}) {
    // Even an obviously broken canary is not judged on so little data.
    AnalysisResult r =
        analyze(synthetic(canary, canary, 5.0), synthetic(baseline, 0, 0.1), AnalysisConfig{});
    EXPECT_EQ(r.verdict, Verdict::kInconclusive);
    ASSERT_EQ(r.findings.size(), 1u);
    EXPECT_EQ(r.findings[0].rule, "min_requests");
    EXPECT_TRUE(r.findings[0].crossed);
    EXPECT_EQ(r.findings[0].threshold, 20);
    EXPECT_NE(r.findings[0].message.find("too few"), std::string::npos);
  }
  EXPECT_EQ(analyze(synthetic(20, 0, 0.1), synthetic(20, 0, 0.1), AnalysisConfig{}).verdict,
            Verdict::kPass);
}

TEST(AnalyzeTest, ZeroBaselineFloor) {
  // One error in 200 (0.5%) against a clean baseline is noise, not a rollback.
  AnalysisResult one = analyze(synthetic(200, 1, 0.1), synthetic(2000, 0, 0.1), AnalysisConfig{});
  EXPECT_EQ(one.verdict, Verdict::kPass);
  EXPECT_DOUBLE_EQ(findRule(one.findings, "error_rate")->threshold, 0.01);
  // Exactly at the floor still passes; above it fails.
  EXPECT_EQ(analyze(synthetic(200, 2, 0.1), synthetic(2000, 0, 0.1), AnalysisConfig{}).verdict,
            Verdict::kPass);
  EXPECT_EQ(analyze(synthetic(200, 3, 0.1), synthetic(2000, 0, 0.1), AnalysisConfig{}).verdict,
            Verdict::kFail);
  // Where the relative limit is above the floor, the relative limit decides.
  AnalysisResult rel = analyze(synthetic(1000, 59, 0.1), synthetic(1000, 40, 0.1), {});
  EXPECT_EQ(rel.verdict, Verdict::kPass);
  EXPECT_NEAR(findRule(rel.findings, "error_rate")->threshold, 0.06, 1e-12);
}

TEST(AnalyzeTest, MissingLatencyIsInconclusiveUnlessSomethingFailed) {
  AnalysisResult r =
      analyze(synthetic(100, 0, std::nullopt), synthetic(900, 0, 0.1), AnalysisConfig{});
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_NE(findRule(r.findings, "latency_p95")->message.find("canary"), std::string::npos);
  EXPECT_EQ(
      analyze(synthetic(100, 30, std::nullopt), synthetic(900, 0, 0.1), AnalysisConfig{}).verdict,
      Verdict::kFail);
}

TEST(AnalyzeTest, CustomConfig) {
  AnalysisConfig cfg;
  cfg.latency_p95_ratio = 4;
  cfg.error_rate_increase = 1.0;
  cfg.min_requests = 500;
  EXPECT_EQ(analyze(synthetic(100, 0, 0.1), synthetic(900, 0, 0.1), cfg).verdict,
            Verdict::kInconclusive);
  cfg.min_requests = 50;
  AnalysisResult r = analyze(synthetic(100, 9, 0.3), synthetic(900, 45, 0.1), cfg);
  EXPECT_EQ(r.verdict, Verdict::kPass);
  EXPECT_NE(findRule(r.findings, "error_rate")->message.find("+100% limit"), std::string::npos);
  EXPECT_STREQ(verdictName(Verdict::kInconclusive), "inconclusive");
}

// ---------------------------------------------------------------------------------------------
// Alerts

TEST(CheckAlertsTest, OnlyCrossedThresholds) {
  const WindowStats base = synthetic(1000, 10, 0.1);
  EXPECT_TRUE(checkAlerts(synthetic(100, 5, 0.2), &base, AlertConfig{}, 0.9, 0.9).empty());

  std::vector<Finding> all = checkAlerts(synthetic(100, 6, 0.21), &base, AlertConfig{}, 0.95, 0.91);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].rule, "error_rate");
  EXPECT_DOUBLE_EQ(all[0].canary, 0.06);
  EXPECT_DOUBLE_EQ(all[0].threshold, 0.05);
  EXPECT_EQ(all[1].rule, "latency_p95");
  EXPECT_DOUBLE_EQ(all[1].baseline, 0.1);
  EXPECT_DOUBLE_EQ(all[1].threshold, 0.2);
  EXPECT_EQ(all[2].rule, "cpu");
  EXPECT_EQ(all[2].message, "CPU 95% is over the 90% alert threshold");
  EXPECT_EQ(all[3].rule, "memory");
  for (const Finding& f : all) EXPECT_TRUE(f.crossed);
}

TEST(CheckAlertsTest, ARuleTurnedOffNeverFires) {
  const WindowStats base = synthetic(1000, 10, 0.1);
  AlertConfig cfg;
  cfg.error_rate.reset();
  cfg.cpu.reset();
  std::vector<Finding> left = checkAlerts(synthetic(100, 60, 0.5), &base, cfg, 0.99, 0.99);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].rule, "latency_p95");
  EXPECT_EQ(left[1].rule, "memory");
  cfg.latency_p95_ratio.reset();
  cfg.memory.reset();
  EXPECT_TRUE(checkAlerts(synthetic(100, 60, 0.5), &base, cfg, 0.99, 0.99).empty());
}

TEST(CheckAlertsTest, NeedsDataAndABaselineForLatency) {
  // No baseline: no latency alert, the absolute error rate still applies.
  std::vector<Finding> f =
      checkAlerts(synthetic(100, 50, 5.0), nullptr, AlertConfig{}, std::nullopt, std::nullopt);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].rule, "error_rate");
  // One failure out of two requests does not page anyone.
  EXPECT_TRUE(checkAlerts(synthetic(2, 1, 0.1), nullptr, AlertConfig{}, std::nullopt, std::nullopt)
                  .empty());
  // Resource alerts do not depend on traffic.
  EXPECT_EQ(
      checkAlerts(synthetic(0, 0, std::nullopt), nullptr, AlertConfig{}, 1.5, std::nullopt).size(),
      1u);
}

// ---------------------------------------------------------------------------------------------
// Health checks

TEST(ConsecutiveFailuresTest, FourthFailureTriggers) {
  ConsecutiveFailures f;
  EXPECT_FALSE(f.record(false));
  EXPECT_FALSE(f.record(false));
  EXPECT_FALSE(f.record(false));
  EXPECT_EQ(f.current(), 3);
  EXPECT_TRUE(f.record(false));
  EXPECT_EQ(f.current(), 4);
  // Once per run: further failures are counted but do not trigger again.
  EXPECT_FALSE(f.record(false));
  EXPECT_EQ(f.current(), 5);
}

TEST(ConsecutiveFailuresTest, SuccessResetsTheRun) {
  ConsecutiveFailures f(3);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(f.record(false));
  EXPECT_FALSE(f.record(true));
  EXPECT_EQ(f.current(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(f.record(false));
  EXPECT_TRUE(f.record(false));
  f.reset();
  EXPECT_EQ(f.current(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(f.record(false));
  EXPECT_TRUE(f.record(false));
}

TEST(ConsecutiveFailuresTest, OtherThresholds) {
  ConsecutiveFailures zero(0);
  EXPECT_FALSE(zero.record(true));
  EXPECT_TRUE(zero.record(false));
  ConsecutiveFailures negative(-5);
  EXPECT_TRUE(negative.record(false));
  ConsecutiveFailures one(1);
  EXPECT_FALSE(one.record(false));
  EXPECT_TRUE(one.record(false));
}

// ---------------------------------------------------------------------------------------------
// /proc

}  // namespace
}  // namespace flotilla::agent
