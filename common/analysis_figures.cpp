// One analysis window's figures: checks, JSON form and summary line.
#include "common/analysis_figures.hpp"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/rules.hpp"

namespace flotilla::common {

using nlohmann::json;

namespace {

std::string fixed(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// "0.8%", "12%" (shares as percent, one decimal under 10%).
std::string percentText(double share) {
  const double p = share * 100;
  return fixed(p < 10 ? "%.1f%%" : "%.0f%%", p);
}

// "0.4 ms", "12 ms", "1.25 s".
std::string secondsText(double s) {
  if (s >= 1) return fixed("%.2f s", s);
  const double ms = s * 1000;
  return fixed(ms < 10 ? "%.1f ms" : "%.0f ms", ms);
}

Status checkShare(const char* what, double v) {
  if (!std::isfinite(v) || v < 0 || v > 1) {
    return Status::InvalidArgument(std::string(what) + " is not a share between 0 and 1");
  }
  return Status::Ok();
}

Status checkSeconds(const char* what, double v) {
  if (!std::isfinite(v) || v < 0 || v > kMaxFiguresSeconds) {
    return Status::InvalidArgument(std::string(what) + " is not a time between 0 and a day");
  }
  return Status::Ok();
}

Status checkSet(const char* which, const SetFigures& s) {
  const std::string set(which);
  if (!isValidVersion(s.version)) {
    return Status::InvalidArgument(set + " version: " + kVersionRule);
  }
  if (!std::isfinite(s.request_rate) || s.request_rate < 0) {
    return Status::InvalidArgument(set + " request rate is not a finite number >= 0");
  }
  if (Status st = checkShare((set + " error rate").c_str(), s.error_rate); !st.ok()) return st;
  if (s.latency_p95) {
    if (Status st = checkSeconds((set + " p95").c_str(), *s.latency_p95); !st.ok()) return st;
  }
  return Status::Ok();
}

json setJson(const SetFigures& s) {
  return {{"version", s.version},
          {"requests", s.requests},
          {"request_rate", s.request_rate},
          {"error_rate", s.error_rate},
          {"latency_p95_s", s.latency_p95 ? json(*s.latency_p95) : json(nullptr)},
          {"replicas", s.replicas}};
}

std::optional<double> optionalNumber(const json& j, const char* key) {
  const json& v = j.at(key);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number()) throw std::invalid_argument(std::string(key) + " is not a number");
  return v.get<double>();
}

SetFigures setFromJson(const json& j) {
  SetFigures s;
  s.version = j.at("version").get<std::string>();
  s.requests = j.at("requests").get<uint64_t>();
  s.request_rate = j.at("request_rate").get<double>();
  s.error_rate = j.at("error_rate").get<double>();
  s.latency_p95 = optionalNumber(j, "latency_p95_s");
  s.replicas = j.at("replicas").get<uint32_t>();
  return s;
}

// "2.1.0 err 0.8% p95 12 ms (420 req)"
std::string setText(const SetFigures& s) {
  return s.version + " err " + percentText(s.error_rate) + " p95 " +
         (s.latency_p95 ? secondsText(*s.latency_p95) : "-") + " (" + std::to_string(s.requests) +
         " req)";
}

}  // namespace

const char* windowVerdictName(WindowVerdict v) {
  switch (v) {
    case WindowVerdict::kNone:
      return "none";
    case WindowVerdict::kPass:
      return "pass";
    case WindowVerdict::kFail:
      return "fail";
    case WindowVerdict::kInconclusive:
      return "inconclusive";
  }
  return "none";
}

std::optional<WindowVerdict> windowVerdictFromName(const std::string& name) {
  for (WindowVerdict v : {WindowVerdict::kNone, WindowVerdict::kPass, WindowVerdict::kFail,
                          WindowVerdict::kInconclusive}) {
    if (name == windowVerdictName(v)) return v;
  }
  return std::nullopt;
}

Status checkFigures(const AnalysisFigures& f) {
  if (f.window == 0 || f.window > kMaxFiguresWindow) {
    return Status::InvalidArgument("window number out of 1.." + std::to_string(kMaxFiguresWindow));
  }
  if (f.window_ms > static_cast<uint64_t>(kMaxFiguresSeconds * 1000)) {
    return Status::InvalidArgument("window longer than a day");
  }
  if (Status s = checkSet("candidate", f.candidate); !s.ok()) return s;
  if (f.stable) {
    if (Status s = checkSet("stable", *f.stable); !s.ok()) return s;
  }
  if (f.error_rate_limit) {
    if (Status s = checkShare("error-rate limit", *f.error_rate_limit); !s.ok()) return s;
  }
  if (f.latency_p95_limit) {
    if (Status s = checkSeconds("p95 limit", *f.latency_p95_limit); !s.ok()) return s;
  }
  if (f.health_failing > f.health_checks) {
    return Status::InvalidArgument("more consecutive health failures than checks");
  }
  if (f.strategy_step < 0 || f.strategy_steps < 0 || f.strategy_step > f.strategy_steps) {
    return Status::InvalidArgument("strategy step out of range");
  }
  return Status::Ok();
}

json figuresToJson(const AnalysisFigures& f) {
  return {{"step", f.bake ? "bake" : "analyze"},
          {"window", f.window},
          {"window_ms", f.window_ms},
          {"candidate", setJson(f.candidate)},
          {"stable", f.stable ? setJson(*f.stable) : json(nullptr)},
          {"limits",
           {{"error_rate", f.error_rate_limit ? json(*f.error_rate_limit) : json(nullptr)},
            {"latency_p95_s", f.latency_p95_limit ? json(*f.latency_p95_limit) : json(nullptr)},
            {"min_requests", f.min_requests}}},
          {"verdict", windowVerdictName(f.verdict)},
          {"health",
           {{"checks", f.health_checks},
            {"failing", f.health_failing},
            {"threshold", f.health_threshold}}},
          {"strategy_step", f.strategy_step > 0 ? json(f.strategy_step) : json(nullptr)},
          {"strategy_steps", f.strategy_steps}};
}

StatusOr<AnalysisFigures> figuresFromJson(const json& j) {
  AnalysisFigures f;
  try {
    const std::string step = j.at("step").get<std::string>();
    if (step != "analyze" && step != "bake") throw std::invalid_argument("unknown step " + step);
    f.bake = step == "bake";
    f.window = j.at("window").get<uint32_t>();
    f.window_ms = j.at("window_ms").get<uint64_t>();
    f.candidate = setFromJson(j.at("candidate"));
    if (!j.at("stable").is_null()) f.stable = setFromJson(j.at("stable"));
    const json& limits = j.at("limits");
    f.error_rate_limit = optionalNumber(limits, "error_rate");
    f.latency_p95_limit = optionalNumber(limits, "latency_p95_s");
    f.min_requests = limits.at("min_requests").get<uint64_t>();
    auto verdict = windowVerdictFromName(j.at("verdict").get<std::string>());
    if (!verdict) throw std::invalid_argument("unknown verdict");
    f.verdict = *verdict;
    const json& health = j.at("health");
    f.health_checks = health.at("checks").get<uint32_t>();
    f.health_failing = health.at("failing").get<uint32_t>();
    f.health_threshold = health.at("threshold").get<uint32_t>();
    if (!j.at("strategy_step").is_null()) f.strategy_step = j.at("strategy_step").get<int>();
    f.strategy_steps = j.at("strategy_steps").get<int>();
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("analysis figures: ") + e.what());
  }
  if (Status s = checkFigures(f); !s.ok()) {
    return Status::InvalidArgument("analysis figures: " + s.message());
  }
  return f;
}

std::string figuresSummary(const AnalysisFigures& f) {
  std::string out = f.bake ? "bake" : "analysis";
  if (f.strategy_step > 0 && f.strategy_steps > 0) {
    out += " " + std::to_string(f.strategy_step) + "/" + std::to_string(f.strategy_steps);
  }
  if (f.window > 1) out += (f.bake ? " slice " : " window ") + std::to_string(f.window);
  out += ": " + setText(f.candidate);
  if (f.stable) out += " vs " + setText(*f.stable);
  std::string limits;
  if (f.error_rate_limit) limits += "err " + percentText(*f.error_rate_limit);
  if (f.latency_p95_limit) {
    limits +=
        (limits.empty() ? "" : ", ") + std::string("p95 ") + secondsText(*f.latency_p95_limit);
  }
  if (!limits.empty()) {
    limits += ", min " + std::to_string(f.min_requests) + " req";
    out += "; limits " + limits;
  }
  if (f.verdict != WindowVerdict::kNone) out += std::string("; ") + windowVerdictName(f.verdict);
  out += " · health " + std::to_string(f.health_failing) + "/" +
         std::to_string(f.health_threshold) + " failing";
  return out;
}

}  // namespace flotilla::common
