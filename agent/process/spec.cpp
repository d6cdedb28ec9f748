#include "agent/process/spec.hpp"

#include <cmath>
#include <regex>
#include <vector>

#include "common/logging.hpp"
#include "common/rules.hpp"
#include "common/strings.hpp"

namespace flotilla::agent {

using common::Status;
using common::StatusOr;
using Millis = std::chrono::milliseconds;
using common::replaceAll;

namespace {

// Versions and cluster names are pasted into a shell command line and file names: only
// characters that mean nothing to the shell or the file system get through.
constexpr char kPathPattern[] = "^/[!-~]{0,255}$";  // printable, no space: it goes into a URL
constexpr char kUrlPattern[] = "^https?://[!-~]{1,2040}$";
constexpr uint64_t kMaxDurationMs = 7 * 24 * 3'600'000ULL;

bool matches(const std::string& s, const char* pattern) {
  return std::regex_match(s, std::regex(pattern));
}

// Collects every problem instead of stopping at the first.
class Problems {
 public:
  void check(bool ok, const std::string& problem) {
    if (!ok) problems_.push_back(problem);
  }
  template <typename T>
  T inRange(T value, T min, T max, const std::string& name) {
    check(value >= min && value <= max,
          name + " must be in " + std::to_string(min) + ".." + std::to_string(max));
    return value;
  }
  double share(double value, const std::string& name) {
    check(std::isfinite(value) && value >= 0, name + " must be a number >= 0");
    return value;
  }
  std::string text(capnp::Text::Reader value, const std::string& name) {
    std::string out(value.cStr(), value.size());
    check(!out.empty(), name + " is missing");
    return out;
  }
  Status status() const {
    if (problems_.empty()) return Status::Ok();
    std::string msg = "bad spec: ";
    for (size_t i = 0; i < problems_.size(); ++i) msg += (i ? "; " : "") + problems_[i];
    return Status::InvalidArgument(msg);
  }

 private:
  std::vector<std::string> problems_;
};

std::string str(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

void readProcess(schema::ProcessSpec::Process::Reader p, Spec& spec, Problems& r) {
  ProcessSpec ps;
  ps.command = r.text(p.getCommand(), "process.command");
  ps.replicas =
      static_cast<int>(r.inRange<uint32_t>(p.getReplicas(), 1, kMaxReplicas, "process.replicas"));
  ps.port_min = static_cast<int>(r.inRange<uint32_t>(p.getPortMin(), 1, 65535, "process.port_min"));
  ps.port_max = static_cast<int>(r.inRange<uint32_t>(p.getPortMax(), 1, 65535, "process.port_max"));
  r.check(ps.port_min <= ps.port_max, "process.port_min must not be above process.port_max");
  ps.health_path = str(p.getHealthPath());
  r.check(ps.health_path.empty() || matches(ps.health_path, kPathPattern),
          "process.health_path must start with '/' and hold no space or control character");
  spec.process = ps;
}

void readHealth(schema::ProcessSpec::Health::Reader h, Spec& spec, Problems& r) {
  if (h.hasPath()) spec.health.path = str(h.getPath());
  spec.health.interval =
      Millis(r.inRange<uint64_t>(h.getIntervalMs(), 10, 3'600'000, "health.intervalMs"));
  spec.health.timeout =
      Millis(r.inRange<uint64_t>(h.getTimeoutMs(), 1, 600'000, "health.timeoutMs"));
  spec.health.failure_threshold = static_cast<int>(
      r.inRange<uint32_t>(h.getFailureThreshold(), 0, 1000, "health.failureThreshold"));
  spec.health.url = str(h.getUrl());
  r.check(spec.health.url.empty() || matches(spec.health.url, kUrlPattern),
          "health.url must be an http(s) URL of printable characters, no space");
}

void readMetrics(schema::ProcessSpec::Metrics::Reader m, Spec& spec, Problems& r) {
  MetricsSpec ms;
  ms.config.error_rate_increase = r.share(m.getErrorRateIncrease(), "metrics.errorRateIncrease");
  ms.config.latency_p95_ratio = r.share(m.getLatencyP95Ratio(), "metrics.latencyP95Ratio");
  ms.config.min_requests =
      r.inRange<uint64_t>(m.getMinRequests(), 0, 1'000'000'000, "metrics.minRequests");
  ms.wait_when_inconclusive = !m.getFailWhenInconclusive();
  if (m.hasPrometheus()) {
    auto q = m.getPrometheus();
    PrometheusSource ps;
    ps.url = str(q.getUrl());
    r.check(ps.url.rfind("http://", 0) == 0 || ps.url.rfind("https://", 0) == 0,
            "metrics.prometheus.url must be an http(s) URL");
    ps.request_rate = r.text(q.getRequestRate(), "metrics.prometheus.requestRate");
    ps.error_rate = r.text(q.getErrorRate(), "metrics.prometheus.errorRate");
    ps.latency_p95 = r.text(q.getLatencyP95(), "metrics.prometheus.latencyP95");
    ms.prometheus = ps;
  }
  spec.metrics = ms;
}

void readAlerts(schema::ProcessSpec::Alerts::Reader a, Spec& spec, Problems& r) {
  AlertConfig ac;
  ac.error_rate.reset();
  ac.latency_p95_ratio.reset();
  ac.cpu.reset();
  ac.memory.reset();
  if (!a.getErrorRateOff()) ac.error_rate = r.share(a.getErrorRate(), "alerts.errorRate");
  if (!a.getLatencyP95RatioOff()) {
    ac.latency_p95_ratio = r.share(a.getLatencyP95Ratio(), "alerts.latencyP95Ratio");
  }
  if (!a.getCpuOff()) ac.cpu = r.share(a.getCpu(), "alerts.cpu");
  if (!a.getMemoryOff()) ac.memory = r.share(a.getMemory(), "alerts.memory");
  spec.alerts = ac;
}

void readRolling(schema::ProcessSpec::Rolling::Reader st, Spec& spec, Problems& r) {
  RollingSpec rs;
  rs.max_unavailable = static_cast<int>(
      r.inRange<uint32_t>(st.getMaxUnavailable(), 0, kMaxReplicas, "rolling.maxUnavailable"));
  rs.max_surge =
      static_cast<int>(r.inRange<uint32_t>(st.getMaxSurge(), 0, kMaxReplicas, "rolling.maxSurge"));
  r.check(rs.max_unavailable > 0 || rs.max_surge > 0,
          "rolling.maxUnavailable and rolling.maxSurge must not both be 0");
  spec.rolling = rs;
}

}  // namespace

StatusOr<Spec> readSpec(Step step, schema::ProcessSpec::Reader wire,
                        const std::string& default_cluster) {
  Problems r;
  Spec spec;
  spec.service = r.text(wire.getService(), "service");
  r.check(spec.service.empty() || common::isValidName(spec.service),
          std::string("service must be a name: ") + common::kNameRule);
  spec.version = r.text(wire.getVersion(), "version");
  r.check(spec.version.empty() || common::isValidVersion(spec.version),
          std::string("version must be a version: ") + common::kVersionRule);
  spec.previous_version = str(wire.getPreviousVersion());
  r.check(spec.previous_version.empty() || common::isValidVersion(spec.previous_version),
          std::string("previousVersion must be a version: ") + common::kVersionRule);
  spec.cluster = str(wire.getCluster());
  if (spec.cluster.empty()) spec.cluster = default_cluster;
  r.check(common::isValidName(spec.cluster),
          std::string("cluster must be a name: ") + common::kNameRule);
  spec.deployment = str(wire.getDeployment());

  if (wire.hasProcess()) {
    readProcess(wire.getProcess(), spec, r);
  } else {
    r.check(step != Step::DEPLOY && step != Step::ROLL, "process is missing");
  }
  if (wire.hasTraffic()) {
    auto t = wire.getTraffic();
    spec.traffic = TrafficSpec{replaceAll(r.text(t.getHaproxySocket(), "traffic.haproxySocket"),
                                          "{cluster}", spec.cluster),
                               r.text(t.getHaproxyBackend(), "traffic.haproxyBackend")};
  }
  if (wire.hasHealth()) {
    readHealth(wire.getHealth(), spec, r);
  } else if (spec.process && !spec.process->health_path.empty()) {
    spec.health.path = spec.process->health_path;
  }
  r.check(matches(spec.health.path, kPathPattern),
          "health.path must start with '/' and hold no space or control character");
  if (spec.process && spec.process->health_path.empty()) {
    spec.process->health_path = spec.health.path;
  }
  if (wire.hasMetrics()) readMetrics(wire.getMetrics(), spec, r);
  if (wire.hasAlerts()) readAlerts(wire.getAlerts(), spec, r);
  // The bounds matter to a roll, and to a rollback that goes back the way a roll came.
  if (wire.hasRolling()) readRolling(wire.getRolling(), spec, r);
  if (step == Step::ROLL && !spec.rolling) spec.rolling = RollingSpec{};
  if (step == Step::SHIFT) {
    spec.weight = static_cast<int>(r.inRange<uint32_t>(wire.getWeight(), 0, 100, "weight"));
  }
  if (step == Step::ANALYZE || step == Step::BAKE || step == Step::WATCH) {
    spec.duration =
        Millis(r.inRange<uint64_t>(wire.getDurationMs(), 1, kMaxDurationMs, "durationMs"));
  }
  if (Status s = r.status(); !s.ok()) return s;
  return spec;
}

StatusOr<Spec> readCommandSpec(const StepCommand& command, SpecField field,
                               const std::string& default_cluster) {
  const Step step = command.wire.getStep();
  const bool present =
      field == SpecField::kProcess ? command.wire.hasProcess() : command.wire.hasWatch();
  if (!present) {
    return Status::InvalidArgument(std::string("bad spec: the command has no ") +
                                   (field == SpecField::kProcess ? "process" : "watch"));
  }
  StatusOr<Spec> spec = readSpec(
      step, field == SpecField::kProcess ? command.wire.getProcess() : command.wire.getWatch(),
      default_cluster);
  if (!spec.ok()) return spec;
  if (spec->deployment != command.key.deployment) {
    return Status::InvalidArgument("bad spec: it is for deployment \"" +
                                   common::loggable(spec->deployment, 80) + "\"");
  }
  spec->env = command.env;
  return spec;
}

}  // namespace flotilla::agent
