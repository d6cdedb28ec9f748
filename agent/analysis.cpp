// Metric analysis core: exposition parser, window statistics, canary and alert rules.
#include "agent/analysis.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>
#include <utility>

namespace flotilla::agent {

using common::Status;
using common::StatusOr;

namespace {

__attribute__((format(printf, 1, 2))) std::string strFormat(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  if (n < 0) return std::string();
  return std::string(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof(buf) - 1));
}

// ---------------------------------------------------------------------------------------------
// Parser helpers

bool isBlank(char c) { return c == ' ' || c == '\t'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isMetricNameStart(char c) { return isAlpha(c) || c == '_' || c == ':'; }
bool isMetricNameChar(char c) { return isMetricNameStart(c) || isDigit(c); }
bool isLabelNameStart(char c) { return isAlpha(c) || c == '_'; }
bool isLabelNameChar(char c) { return isLabelNameStart(c) || isDigit(c); }

// Label values end up in events and JSON; nlohmann::json throws on invalid UTF-8 when dumping,
// so a bad byte sequence is refused here, at the edge, rather than far away later.
bool isValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong encodings, UTF-16 surrogates and code points past Unicode are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;
    }
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

// A float as Prometheus writes one: decimal or scientific, "+Inf", "-Inf", "NaN" (any case,
// as Go's ParseFloat accepts). from_chars does not take a leading '+', so it is peeled here.
bool parseFloatToken(std::string_view tok, double* out) {
  if (!tok.empty() && tok.front() == '+') {
    tok.remove_prefix(1);
    if (!tok.empty() && (tok.front() == '+' || tok.front() == '-')) return false;
  }
  if (tok.empty()) return false;
  double v = 0;
  const char* end = tok.data() + tok.size();
  const auto [ptr, ec] = std::from_chars(tok.data(), end, v, std::chars_format::general);
  if (ec != std::errc() || ptr != end) return false;
  *out = v;
  return true;
}

bool parseIntToken(std::string_view tok, int64_t* out) {
  if (!tok.empty() && tok.front() == '+') {
    tok.remove_prefix(1);
    if (!tok.empty() && tok.front() == '-') return false;
  }
  if (tok.empty()) return false;
  int64_t v = 0;
  const char* end = tok.data() + tok.size();
  const auto [ptr, ec] = std::from_chars(tok.data(), end, v);
  if (ec != std::errc() || ptr != end) return false;
  *out = v;
  return true;
}

// Walks one line from `start` (past leading blanks); errors carry the 1-based column in the raw
// line where the problem was seen.
class LineParser {
 public:
  LineParser(std::string_view line, std::size_t start) : line_(line), pos_(start) {}

  // Fills `sample` from a sample line, or returns the reason it is not one.
  Status parseSample(MetricSample* sample) {
    const std::size_t name_start = pos_;
    if (atEnd() || !isMetricNameStart(peek())) return error("expected a metric name");
    while (!atEnd() && isMetricNameChar(peek())) ++pos_;
    sample->name.assign(line_.substr(name_start, pos_ - name_start));

    const std::size_t after_name = pos_;
    skipBlanks();
    if (!atEnd() && peek() == '{') {
      ++pos_;
      Status st = parseLabels(&sample->labels);
      if (!st.ok()) return st;
      skipBlanks();
    } else if (pos_ == after_name) {
      // "foo-1" must not read as metric "foo" with value -1.
      return error("expected a blank or '{' after the metric name");
    }

    const std::string_view value_tok = token();
    if (value_tok.empty()) return error("expected a sample value");
    if (!parseFloatToken(value_tok, &sample->value)) {
      return errorAt(pos_ - value_tok.size(), "sample value is not a number");
    }
    skipBlanks();
    if (atEnd()) return Status::Ok();

    const std::string_view ts_tok = token();
    int64_t ts = 0;
    if (!parseIntToken(ts_tok, &ts)) {
      return errorAt(pos_ - ts_tok.size(), "timestamp is not an integer (milliseconds)");
    }
    sample->timestamp_ms = ts;
    skipBlanks();
    if (!atEnd()) return error("unexpected text after the timestamp");
    return Status::Ok();
  }

  // Checks "# HELP name ..." and "# TYPE name type"; other comments are free text.
  Status parseComment() {
    ++pos_;  // '#'
    skipBlanks();
    const std::string_view keyword = token();
    if (keyword != "HELP" && keyword != "TYPE") return Status::Ok();
    skipBlanks();
    if (atEnd() || !isMetricNameStart(peek())) {
      return error(strFormat("expected a metric name after %s", std::string(keyword).c_str()));
    }
    while (!atEnd() && isMetricNameChar(peek())) ++pos_;
    if (!atEnd() && !isBlank(peek())) return error("invalid character in metric name");
    if (keyword == "HELP") return Status::Ok();  // the docstring is not used

    skipBlanks();
    const std::size_t type_start = pos_;
    const std::string_view type = token();
    constexpr std::string_view kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
      return errorAt(type_start, "TYPE must be counter, gauge, histogram, summary or untyped");
    }
    skipBlanks();
    if (!atEnd()) return error("unexpected text after the TYPE");
    return Status::Ok();
  }

 private:
  Status parseLabels(Labels* labels) {
    while (true) {
      skipBlanks();
      if (atEnd()) return error("unterminated label set");
      if (peek() == '}') {  // also accepts "{}" and a trailing comma
        ++pos_;
        return Status::Ok();
      }
      const std::size_t name_start = pos_;
      if (!isLabelNameStart(peek())) return error("expected a label name");
      while (!atEnd() && isLabelNameChar(peek())) ++pos_;
      std::string name(line_.substr(name_start, pos_ - name_start));
      skipBlanks();
      if (atEnd() || peek() != '=') return error("expected '=' after the label name");
      ++pos_;
      skipBlanks();
      if (atEnd() || peek() != '"') return error("expected '\"' to open the label value");
      ++pos_;
      const std::size_t value_start = pos_;
      std::string value;
      Status st = parseLabelValue(&value);
      if (!st.ok()) return st;
      if (!isValidUtf8(value)) return errorAt(value_start, "label value is not valid UTF-8");
      if (labels->size() >= kMaxLabelsPerSample) {
        return errorAt(name_start, strFormat("more than %zu labels", kMaxLabelsPerSample));
      }
      if (!labels->emplace(std::move(name), std::move(value)).second) {
        return errorAt(name_start, "duplicate label name");
      }
      skipBlanks();
      if (atEnd()) return error("unterminated label set");
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != '}') {
        return error("expected ',' or '}' after a label");
      }
    }
  }

  // Reads up to the closing quote; the only escapes are \\, \" and \n.
  Status parseLabelValue(std::string* out) {
    while (!atEnd()) {
      const char c = line_[pos_];
      if (c == '"') {
        ++pos_;
        return Status::Ok();
      }
      if (c == '\\') {
        if (pos_ + 1 >= line_.size()) break;
        const char e = line_[pos_ + 1];
        if (e == '\\') {
          out->push_back('\\');
        } else if (e == '"') {
          out->push_back('"');
        } else if (e == 'n') {
          out->push_back('\n');
        } else {
          return error("invalid escape in label value (only \\\\, \\\" and \\n)");
        }
        pos_ += 2;
        continue;
      }
      out->push_back(c);
      ++pos_;
    }
    return error("unterminated label value");
  }

  bool atEnd() const { return pos_ >= line_.size(); }
  char peek() const { return line_[pos_]; }
  void skipBlanks() {
    while (!atEnd() && isBlank(peek())) ++pos_;
  }
  std::string_view token() {
    const std::size_t start = pos_;
    while (!atEnd() && !isBlank(peek())) ++pos_;
    return line_.substr(start, pos_ - start);
  }
  Status error(const std::string& reason) const { return errorAt(pos_, reason); }
  Status errorAt(std::size_t pos, const std::string& reason) const {
    return Status::InvalidArgument(strFormat("column %zu: %s", pos + 1, reason.c_str()));
  }

  std::string_view line_;
  std::size_t pos_;
};

StatusOr<MetricSamples> parseAll(std::string_view text) {
  MetricSamples samples;
  std::size_t label_pairs = 0;
  std::size_t line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;

    // Tolerate CRLF from exporters behind Windows-minded proxies, and surrounding blanks.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t lead = line.find_first_not_of(" \t");
    if (lead == std::string_view::npos) continue;
    line = line.substr(0, line.find_last_not_of(" \t") + 1);

    LineParser parser(line, lead);
    Status st;
    if (line[lead] == '#') {
      st = parser.parseComment();
    } else {
      if (samples.size() >= kMaxSamples) {
        return Status::InvalidArgument(
            strFormat("line %zu: more than %zu samples", line_no, kMaxSamples));
      }
      MetricSample sample;
      st = parser.parseSample(&sample);
      if (st.ok()) {
        label_pairs += sample.labels.size();
        if (label_pairs > kMaxLabelPairs) {
          return Status::InvalidArgument(
              strFormat("line %zu: more than %zu labels in total", line_no, kMaxLabelPairs));
        }
        samples.push_back(std::move(sample));
      }
    }
    if (!st.ok()) {
      return Status::InvalidArgument(strFormat("line %zu, %s", line_no, st.message().c_str()));
    }
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// Window statistics helpers

// Counters are exported as floats; a count past this is garbage, not traffic.
constexpr double kMaxCount = 9.0e18;

uint64_t toCount(double v) {
  if (!(v > 0)) return 0;  // also NaN
  if (v >= kMaxCount) return static_cast<uint64_t>(kMaxCount);
  return static_cast<uint64_t>(std::llround(v));
}

uint64_t saturatingAdd(uint64_t a, uint64_t b) {
  const uint64_t sum = a + b;
  return sum < a ? std::numeric_limits<uint64_t>::max() : sum;
}

bool isErrorCode(std::string_view code) {
  if (code.size() != 3 || code[0] != '5') return false;
  return (isDigit(code[1]) && isDigit(code[2])) || code.substr(1) == "xx";
}

struct ReplicaSeries {
  std::map<Labels, double> requests;
  std::map<Labels, double> buckets;  // keyed by the full label set, le included
};

Status checkCounter(const MetricSample& s, const char* which) {
  if (!std::isfinite(s.value) || s.value < 0) {
    return Status::Corruption(strFormat("%s scrape: %s has a value that is not a counter (%g)",
                                        which, s.name.c_str(), s.value));
  }
  return Status::Ok();
}

StatusOr<ReplicaSeries> collectSeries(const MetricSamples& samples, const MetricNames& names,
                                      const char* which) {
  ReplicaSeries out;
  const std::string bucket_name = names.duration_seconds + "_bucket";
  for (const MetricSample& s : samples) {
    std::map<Labels, double>* into = nullptr;
    if (s.name == names.requests_total) {
      into = &out.requests;
    } else if (s.name == bucket_name) {
      const auto le = s.labels.find("le");
      double bound = 0;
      if (le == s.labels.end() || !parseFloatToken(le->second, &bound) || std::isnan(bound)) {
        return Status::Corruption(
            strFormat("%s scrape: %s without a numeric le label", which, bucket_name.c_str()));
      }
      into = &out.buckets;
    } else {
      continue;
    }
    Status st = checkCounter(s, which);
    if (!st.ok()) return st;
    if (!into->emplace(s.labels, s.value).second) {
      return Status::Corruption(
          strFormat("%s scrape: duplicate series of %s", which, s.name.c_str()));
    }
  }
  return out;
}

bool wentBackwards(const std::map<Labels, double>& before, const std::map<Labels, double>& after) {
  for (const auto& [labels, value] : after) {
    const auto it = before.find(labels);
    if (it != before.end() && value < it->second) return true;
  }
  return false;
}

double delta(const std::map<Labels, double>& before, const Labels& labels, double after,
             bool restarted) {
  if (restarted) return after;
  const auto it = before.find(labels);
  return it == before.end() ? after : after - it->second;
}

void finish(WindowStats* stats) {
  stats->error_rate = stats->requests == 0 ? 0
                                           : static_cast<double>(stats->errors) /
                                                 static_cast<double>(stats->requests);
  stats->latency_p95 = histogramQuantile(0.95, stats->latency_buckets);
}

std::string percent(double fraction) { return strFormat("%+g%%", fraction * 100); }

}  // namespace

StatusOr<MetricSamples> parsePrometheusText(std::string_view text) {
  if (text.size() > kMaxExpositionBytes) {
    return Status::InvalidArgument(strFormat("exposition of %zu bytes is over the %zu byte limit",
                                             text.size(), kMaxExpositionBytes));
  }
  // The limits above bound memory; this catch keeps the promise of never throwing should the
  // host be short of it anyway.
  try {
    return parseAll(text);
  } catch (const std::bad_alloc&) {
    return Status::Unavailable("out of memory while parsing an exposition");
  }
}

StatusOr<WindowStats> computeWindowStats(const MetricSamples& before, const MetricSamples& after,
                                         std::chrono::nanoseconds window,
                                         const MetricNames& names) {
  if (window.count() <= 0) {
    return Status::InvalidArgument("window length must be positive");
  }
  StatusOr<ReplicaSeries> b = collectSeries(before, names, "before");
  if (!b.ok()) return b.status();
  StatusOr<ReplicaSeries> a = collectSeries(after, names, "after");
  if (!a.ok()) return a.status();

  const bool restarted =
      wentBackwards(b->requests, a->requests) || wentBackwards(b->buckets, a->buckets);

  WindowStats stats;
  stats.window = window;
  stats.restarts = restarted ? 1 : 0;

  double requests = 0;
  double errors = 0;
  for (const auto& [labels, value] : a->requests) {
    const double d = delta(b->requests, labels, value, restarted);
    requests += d;
    const auto code = labels.find(names.code_label);
    if (code != labels.end() && isErrorCode(code->second)) errors += d;
  }
  stats.requests = toCount(requests);
  stats.errors = std::min(toCount(errors), stats.requests);

  for (const auto& [labels, value] : a->buckets) {
    double bound = 0;
    // collectSeries already checked that le parses.
    parseFloatToken(labels.at("le"), &bound);
    stats.latency_buckets[bound] += delta(b->buckets, labels, value, restarted);
  }

  const double seconds = std::chrono::duration<double>(window).count();
  stats.request_rate = static_cast<double>(stats.requests) / seconds;
  finish(&stats);
  return stats;
}

WindowStats aggregate(const std::vector<WindowStats>& replicas) {
  WindowStats total;
  for (const WindowStats& r : replicas) {
    total.requests = saturatingAdd(total.requests, r.requests);
    total.errors = saturatingAdd(total.errors, r.errors);
    total.request_rate += r.request_rate;
    total.window = std::max(total.window, r.window);
    total.restarts += r.restarts;
    for (const auto& [bound, count] : r.latency_buckets) total.latency_buckets[bound] += count;
  }
  finish(&total);
  return total;
}

std::optional<double> histogramQuantile(double q, const std::map<double, double>& buckets) {
  if (std::isnan(q) || q < 0 || q > 1) return std::nullopt;
  if (buckets.size() < 2 || !std::isinf(buckets.rbegin()->first) || buckets.rbegin()->first < 0) {
    return std::nullopt;
  }
  // Bucket deltas across replicas or a restart can come out slightly non-monotonic; like
  // Prometheus, treat a cumulative count as at least the one before it.
  std::vector<std::pair<double, double>> cumulative;
  cumulative.reserve(buckets.size());
  double running = 0;
  for (const auto& [bound, count] : buckets) {
    if (!std::isnan(count)) running = std::max(running, count);
    cumulative.emplace_back(bound, running);
  }
  const double observations = cumulative.back().second;
  if (!(observations > 0)) return std::nullopt;

  double rank = q * observations;
  std::size_t b = 0;
  while (b < cumulative.size() && cumulative[b].second < rank) ++b;
  if (b >= cumulative.size() - 1) return cumulative[cumulative.size() - 2].first;
  if (b == 0 && cumulative[0].first <= 0) return cumulative[0].first;

  double start = 0;
  const double end = cumulative[b].first;
  double count = cumulative[b].second;
  if (b > 0) {
    start = cumulative[b - 1].first;
    count -= cumulative[b - 1].second;
    rank -= cumulative[b - 1].second;
  }
  if (!(count > 0)) return end;
  return start + (end - start) * (rank / count);
}

const char* verdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kFail:
      return "fail";
    case Verdict::kInconclusive:
      return "inconclusive";
  }
  return "unknown";
}

double errorRateLimit(const WindowStats& baseline, const AnalysisConfig& cfg) {
  return std::max(baseline.error_rate * (1 + cfg.error_rate_increase), cfg.min_error_rate);
}

std::optional<double> latencyP95Limit(const WindowStats& baseline, const AnalysisConfig& cfg) {
  if (!baseline.latency_p95) return std::nullopt;
  return *baseline.latency_p95 * cfg.latency_p95_ratio;
}

AnalysisResult analyze(const WindowStats& canary, const WindowStats& baseline,
                       const AnalysisConfig& cfg) {
  AnalysisResult result;

  Finding volume;
  volume.rule = "min_requests";
  volume.canary = static_cast<double>(canary.requests);
  volume.baseline = static_cast<double>(baseline.requests);
  volume.threshold = static_cast<double>(cfg.min_requests);
  volume.crossed = canary.requests < cfg.min_requests || baseline.requests < cfg.min_requests;
  volume.message = strFormat("requests: canary %llu, baseline %llu (minimum %llu each)%s",
                             static_cast<unsigned long long>(canary.requests),
                             static_cast<unsigned long long>(baseline.requests),
                             static_cast<unsigned long long>(cfg.min_requests),
                             volume.crossed ? ": too few to judge" : "");
  const bool enough = !volume.crossed;
  result.findings.push_back(std::move(volume));
  if (!enough) {
    result.verdict = Verdict::kInconclusive;
    return result;
  }

  Finding errors;
  errors.rule = "error_rate";
  errors.canary = canary.error_rate;
  errors.baseline = baseline.error_rate;
  errors.threshold = errorRateLimit(baseline, cfg);
  errors.crossed = canary.error_rate > errors.threshold;
  errors.message =
      strFormat("error rate %.3f vs baseline %.3f: %s the %s limit (threshold %.3f)",
                canary.error_rate, baseline.error_rate, errors.crossed ? "over" : "within",
                percent(cfg.error_rate_increase).c_str(), errors.threshold);
  const bool error_crossed = errors.crossed;
  result.findings.push_back(std::move(errors));

  Finding latency;
  latency.rule = "latency_p95";
  bool latency_known = false;
  if (canary.latency_p95 && baseline.latency_p95) {
    latency_known = true;
    latency.canary = *canary.latency_p95;
    latency.baseline = *baseline.latency_p95;
    latency.threshold = *latencyP95Limit(baseline, cfg);
    latency.crossed = latency.canary > latency.threshold;
    latency.message =
        strFormat("p95 latency %.3fs vs baseline %.3fs: %s the %gx limit (threshold %.3fs)",
                  latency.canary, latency.baseline, latency.crossed ? "over" : "within",
                  cfg.latency_p95_ratio, latency.threshold);
  } else {
    latency.message = strFormat("p95 latency unknown: no histogram observations for the %s",
                                !canary.latency_p95 && !baseline.latency_p95 ? "canary or baseline"
                                : !canary.latency_p95                        ? "canary"
                                                                             : "baseline");
  }
  const bool latency_crossed = latency.crossed;
  result.findings.push_back(std::move(latency));

  if (error_crossed || latency_crossed) {
    result.verdict = Verdict::kFail;
  } else if (!latency_known) {
    result.verdict = Verdict::kInconclusive;
  } else {
    result.verdict = Verdict::kPass;
  }
  return result;
}

std::vector<Finding> checkAlerts(const WindowStats& stats, const WindowStats* baseline,
                                 const AlertConfig& cfg, std::optional<double> cpu,
                                 std::optional<double> memory) {
  std::vector<Finding> out;
  const bool enough = stats.requests >= cfg.min_requests;

  if (enough && cfg.error_rate && stats.error_rate > *cfg.error_rate) {
    Finding f;
    f.rule = "error_rate";
    f.canary = stats.error_rate;
    f.threshold = *cfg.error_rate;
    f.crossed = true;
    f.message =
        strFormat("error rate %.3f is over the %.3f alert threshold (%llu of %llu)",
                  stats.error_rate, *cfg.error_rate, static_cast<unsigned long long>(stats.errors),
                  static_cast<unsigned long long>(stats.requests));
    out.push_back(std::move(f));
  }

  if (enough && cfg.latency_p95_ratio && baseline != nullptr &&
      baseline->requests >= cfg.min_requests && stats.latency_p95 && baseline->latency_p95) {
    const double threshold = *baseline->latency_p95 * *cfg.latency_p95_ratio;
    if (*stats.latency_p95 > threshold) {
      Finding f;
      f.rule = "latency_p95";
      f.canary = *stats.latency_p95;
      f.baseline = *baseline->latency_p95;
      f.threshold = threshold;
      f.crossed = true;
      f.message = strFormat("p95 latency %.3fs vs baseline %.3fs: over the %gx alert threshold",
                            f.canary, f.baseline, *cfg.latency_p95_ratio);
      out.push_back(std::move(f));
    }
  }

  const auto share = [&out](const char* rule, const char* what, std::optional<double> value,
                            std::optional<double> threshold) {
    if (!value || !threshold || !(*value > *threshold)) return;
    Finding f;
    f.rule = rule;
    f.canary = *value;
    f.threshold = *threshold;
    f.crossed = true;
    f.message = strFormat("%s %.0f%% is over the %.0f%% alert threshold", what, *value * 100,
                          *threshold * 100);
    out.push_back(std::move(f));
  };
  share("cpu", "CPU", cpu, cfg.cpu);
  share("memory", "memory", memory, cfg.memory);
  return out;
}

ConsecutiveFailures::ConsecutiveFailures(int threshold) : threshold_(std::max(threshold, 0)) {}

bool ConsecutiveFailures::record(bool ok) {
  if (ok) {
    current_ = 0;
    return false;
  }
  // Keeps counting past the trigger so reports show the real run length, but saturates: a
  // check failing for years must not overflow.
  if (current_ < std::numeric_limits<int>::max()) ++current_;
  return current_ == threshold_ + 1;
}

std::string crossedRules(const AnalysisResult& result) {
  std::string crossed;
  for (const Finding& f : result.findings) {
    if (f.crossed && f.rule != "min_requests") {
      crossed += (crossed.empty() ? "" : "; ") + f.message;
    }
  }
  return crossed;
}

namespace {

common::SetFigures setFigures(const MeasuredSet& set) {
  common::SetFigures s;
  s.version = set.version;
  s.requests = set.stats->requests;
  s.request_rate = set.stats->request_rate;
  s.error_rate = set.stats->error_rate;
  s.latency_p95 = set.stats->latency_p95;
  s.replicas = static_cast<uint32_t>(set.replicas);
  return s;
}

common::WindowVerdict windowVerdict(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return common::WindowVerdict::kPass;
    case Verdict::kFail:
      return common::WindowVerdict::kFail;
    case Verdict::kInconclusive:
      return common::WindowVerdict::kInconclusive;
  }
  return common::WindowVerdict::kInconclusive;
}

}  // namespace

common::AnalysisFigures windowFigures(bool bake, int window, std::chrono::nanoseconds length,
                                      const MeasuredSet& candidate, const MeasuredSet* stable,
                                      const AnalysisConfig* config, const AnalysisResult* result) {
  common::AnalysisFigures f;
  f.bake = bake;
  f.window = static_cast<uint32_t>(std::max(window, 1));
  f.window_ms = static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(length).count()));
  f.candidate = setFigures(candidate);
  if (stable != nullptr) f.stable = setFigures(*stable);
  if (result != nullptr && config != nullptr && stable != nullptr) {
    f.error_rate_limit = errorRateLimit(*stable->stats, *config);
    f.latency_p95_limit = latencyP95Limit(*stable->stats, *config);
    f.min_requests = config->min_requests;
    f.verdict = windowVerdict(result->verdict);
  }
  return f;
}

}  // namespace flotilla::agent
