// The sections only the process driver reads: process (how to run a replica), traffic
// (HAProxy), strategy (canary, blue_green, rolling), health (HTTP checks and metrics analysis)
// and alerts. Whether a section fits the plan's driver is checked in plan.cpp.
#include <string>

#include "common/plan_reader.hpp"

namespace flotilla::common::plan_internal {

using namespace std::chrono_literals;

void PlanReader::readProcess(const Field& field, ProcessSpec* process) {
  if (!expectKind(field, YAML::NodeType::Map, "process")) return;
  const Fields fields = readFields(field.value, "process", kProcessFields);
  if (const Field* f = requireField(fields, "command", field.value, "process")) {
    if (auto command = readString(*f, "process.command")) {
      if (command->find("{port}") == std::string::npos) {
        problemAt(f->value,
                  "process.command must contain {port}: the agent picks each "
                  "replica's port");
      } else {
        process->command = *command;
      }
    }
  }
  if (const Field* f = findField(fields, "replicas")) {
    if (auto n = readCount(*f, "process.replicas", 64)) process->replicas = *n;
  }
  if (const Field* f = requireField(fields, "ports", field.value, "process")) {
    if (auto text = readString(*f, "process.ports")) {
      auto dash = text->find('-');
      auto lo = parsePositiveCount(text->substr(0, dash));
      auto hi =
          dash == std::string::npos ? std::nullopt : parsePositiveCount(text->substr(dash + 1));
      if (!lo || !hi || *lo > *hi || *hi > 65535 || *lo < 1024) {
        problemAt(f->value,
                  "process.ports must be a range like \"18000-18099\" within "
                  "1024-65535, not " +
                      quote(*text));
      } else {
        process->port_min = *lo;
        process->port_max = *hi;
      }
    }
  }
  if (const Field* f = findField(fields, "health_path")) {
    if (auto path = readString(*f, "process.health_path")) {
      if (path->empty() || (*path)[0] != '/') {
        problemAt(f->value, "process.health_path must start with '/'");
      } else {
        process->health_path = *path;
      }
    }
  }
  // Old and new replicas run side by side during a rollout.
  if (process->port_max != 0 && process->port_max - process->port_min + 1 < 2 * process->replicas) {
    problemAt(field.value,
              "process.ports holds fewer than 2 x replicas ports; old and new "
              "replicas run side by side during a rollout");
  }
}

void PlanReader::readTraffic(const Field& field, std::optional<HaproxyTraffic>* haproxy) {
  if (!expectKind(field, YAML::NodeType::Map, "traffic")) return;
  const Fields fields = readFields(field.value, "traffic", kTrafficFields);
  const Field* h = requireField(fields, "haproxy", field.value, "traffic");
  if (h == nullptr || !expectKind(*h, YAML::NodeType::Map, "traffic.haproxy")) return;
  const Fields hf = readFields(h->value, "traffic.haproxy", kHaproxyFields);
  HaproxyTraffic out;
  bool ok = true;
  if (const Field* f = requireField(hf, "socket", h->value, "traffic.haproxy")) {
    auto socket = readString(*f, "traffic.haproxy.socket");
    if (socket && (socket->empty() || (*socket)[0] != '/')) {
      problemAt(f->value, "traffic.haproxy.socket must be an absolute path");
      ok = false;
    } else if (socket) {
      out.socket = *socket;
    }
  }
  if (const Field* f = requireField(hf, "backend", h->value, "traffic.haproxy")) {
    auto backend = readString(*f, "traffic.haproxy.backend");
    if (backend && (backend->empty() || backend->size() > 63 ||
                    backend->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                                               "xyz0123456789_.-") != std::string::npos)) {
      problemAt(f->value,
                "traffic.haproxy.backend must be 1 to 63 characters from "
                "[A-Za-z0-9_.-]");
      ok = false;
    } else if (backend) {
      out.backend = *backend;
    }
  }
  if (ok && !out.socket.empty() && !out.backend.empty()) *haproxy = out;
}

void PlanReader::readStrategy(const Field& field, const std::string& path, Strategy* strategy) {
  if (!expectKind(field, YAML::NodeType::Map, path)) return;
  const Fields fields = readFields(field.value, path, kStrategyFields);
  const Field* type = requireField(fields, "type", field.value, path);
  if (type == nullptr) return;
  auto name = readString(*type, path + ".type");
  if (!name) return;
  if (*name == "canary") {
    strategy->kind = StrategyKind::kCanary;
  } else if (*name == "blue_green") {
    strategy->kind = StrategyKind::kBlueGreen;
  } else if (*name == "rolling") {
    strategy->kind = StrategyKind::kRolling;
    readRolling(fields, field, path, strategy);
    return;
  } else {
    problemAt(type->value, "unknown strategy type " + quote(*name) +
                               "; valid values: canary, blue_green, rolling");
    return;
  }
  for (std::string_view name : {"max_unavailable", "max_surge"}) {
    if (const Field* f = findField(fields, name)) {
      problemAt(f->key, path + "." + std::string(name) + " is for type: rolling");
    }
  }
  bool stepped = strategy->kind == StrategyKind::kCanary;
  if (const Field* f = findField(fields, "switch")) {
    auto mode = readString(*f, path + ".switch");
    if (strategy->kind != StrategyKind::kBlueGreen) {
      problemAt(f->key, path + ".switch is for blue_green");
    } else if (mode && *mode == "steps") {
      stepped = true;
    } else if (mode && *mode != "all") {
      problemAt(f->value, path + ".switch must be \"all\" or \"steps\", not " + quote(*mode));
    }
  }
  const Field* steps = findField(fields, "steps");
  if (stepped && steps == nullptr) {
    problemAt(field.value, path + " needs \"steps\", e.g. [10, 50, 100]");
  } else if (!stepped && steps != nullptr) {
    problemAt(steps->key, path + ".steps needs switch: steps");
  } else if (steps != nullptr && expectKind(*steps, YAML::NodeType::Sequence, path + ".steps")) {
    uint32_t last = 0;
    bool good = true;
    for (const auto& item : steps->value) {
      auto value = item.IsScalar() ? parsePositiveCount(item.Scalar()) : std::nullopt;
      if (!value || *value > 100 || *value <= last) {
        problemAt(item, path + ".steps must be increasing percentages from 1 to 100");
        good = false;
        break;
      }
      last = *value;
      strategy->steps.push_back(*value);
    }
    if (good && last != 100) {
      problemAt(steps->value, path + ".steps must end at 100");
    }
  }
  if (!stepped) strategy->steps = {100};
  strategy->pause = std::chrono::seconds(30);
  if (const Field* f = findField(fields, "pause")) {
    if (auto pause = readDurationField(*f, path + ".pause", 0ms, kMaxStepTimeout)) {
      strategy->pause = *pause;
    }
  }
}

void PlanReader::readRolling(const Fields& fields, const Field& field, const std::string& path,
                             Strategy* strategy) {
  for (std::string_view name : {"steps", "pause", "switch"}) {
    if (const Field* f = findField(fields, name)) {
      problemAt(f->key, path + "." + std::string(name) + " is not used by type: rolling");
    }
  }
  strategy->steps = {100};
  // Zero is a valid bound here (never below the count, or never above it).
  auto count = [&](std::string_view name, uint32_t* out) {
    const Field* f = findField(fields, name);
    if (f == nullptr) return;
    auto text = readString(*f, path + "." + std::string(name));
    if (!text) return;
    bool zero =
        !text->empty() && text->size() <= 10 && text->find_first_not_of('0') == std::string::npos;
    auto n = zero ? std::optional<uint32_t>(0) : parsePositiveCount(*text);
    if (!n || *n > 64) {
      problemAt(f->value, path + "." + std::string(name) +
                              " must be an integer from 0 to 64, not " + quote(*text));
      return;
    }
    *out = *n;
  };
  count("max_unavailable", &strategy->max_unavailable);
  count("max_surge", &strategy->max_surge);
  if (strategy->max_unavailable == 0 && strategy->max_surge == 0) {
    problemAt(field.value, path +
                               ": max_unavailable and max_surge cannot both be 0 (nothing "
                               "could ever be replaced)");
  }
}

void PlanReader::readHealth(const Field& field, Health* health) {
  if (!expectKind(field, YAML::NodeType::Map, "health")) return;
  const Fields fields = readFields(field.value, "health", kHealthFields);
  if (const Field* h = findField(fields, "http");
      h != nullptr && expectKind(*h, YAML::NodeType::Map, "health.http")) {
    const Fields hf = readFields(h->value, "health.http", kHttpHealthFields);
    if (const Field* f = findField(hf, "url")) {
      health_url_at_ = f->key.Mark();
      if (auto url = readHealthUrl(*f)) health->http.url = *url;
    } else if (driver_ == DriverKind::kScript) {
      problemAt(h->key,
                "health.http needs url with the script driver: the address the agent probes, "
                "e.g. http://{cluster}.example.internal/health");
    }
    if (const Field* f = findField(hf, "path")) {
      health_path_at_ = f->key.Mark();
      auto path = readString(*f, "health.http.path");
      if (path && (path->empty() || (*path)[0] != '/')) {
        problemAt(f->value, "health.http.path must start with '/'");
      } else if (path) {
        health->http.path = *path;
      }
    }
    if (const Field* f = findField(hf, "interval")) {
      if (auto d = readDurationField(*f, "health.http.interval", 50ms, 1h))
        health->http.interval = *d;
    }
    if (const Field* f = findField(hf, "timeout")) {
      if (auto d = readDurationField(*f, "health.http.timeout", 10ms, 5min))
        health->http.timeout = *d;
    }
    if (const Field* f = findField(hf, "failure_threshold")) {
      if (auto n = readCount(*f, "health.http.failure_threshold", 100)) {
        health->http.failure_threshold = *n;
      }
    }
  }
  if (const Field* m = findField(fields, "metrics");
      m != nullptr && expectKind(*m, YAML::NodeType::Map, "health.metrics")) {
    MetricsAnalysis metrics;
    readMetrics(*m, &metrics);
    health->metrics = metrics;
  }
}

void PlanReader::readMetrics(const Field& m, MetricsAnalysis* metrics) {
  const Fields mf = readFields(m.value, "health.metrics", kMetricsFields);
  const Field* source_field = findField(mf, "source");
  if (source_field != nullptr) {
    auto source = readString(*source_field, "health.metrics.source");
    if (source && *source == "prometheus") {
      metrics->source = MetricsSource::kPrometheus;
    } else if (source && *source != "scrape") {
      problemAt(source_field->value,
                "health.metrics.source must be \"scrape\" or "
                "\"prometheus\", not " +
                    quote(*source));
    }
  }
  const Field* url = findField(mf, "prometheus");
  if (url != nullptr) {
    if (auto u = readHttpUrl(*url, "health.metrics.prometheus")) metrics->prometheus = *u;
    if (metrics->source != MetricsSource::kPrometheus) {
      problemAt(url->key, "health.metrics.prometheus is used only with source: prometheus");
    }
  } else if (metrics->source == MetricsSource::kPrometheus) {
    problemAt(source_field->value,
              "source: prometheus needs health.metrics.prometheus, the "
              "server's URL (e.g. http://127.0.0.1:9090)");
  }
  if (const Field* q = findField(mf, "queries");
      q != nullptr && expectKind(*q, YAML::NodeType::Map, "health.metrics.queries")) {
    if (metrics->source != MetricsSource::kPrometheus) {
      problemAt(q->key, "health.metrics.queries is used only with source: prometheus");
    }
    const Fields qf = readFields(q->value, "health.metrics.queries", kQueryFields);
    auto query = [&](std::string_view name, std::string* out) {
      const Field* f = findField(qf, name);
      if (f == nullptr) return;
      const std::string path = "health.metrics.queries." + std::string(name);
      auto text = readString(*f, path);
      if (!text) return;
      if (text->empty() || text->size() > 4096) {
        problemAt(f->value, path + " must be 1 to 4096 characters of PromQL");
      } else if (driver_ == DriverKind::kScript) {
        if (text->find("{instances}") != std::string::npos) {
          problemAt(f->value, path +
                                  ": {instances} names the process driver's replicas; with the "
                                  "script driver tell the sets apart with {version}");
        } else if (text->find("{version}") == std::string::npos) {
          problemAt(f->value, path +
                                  " must use {version} so it measures one version (new or "
                                  "stable), not the whole service");
        } else {
          *out = *text;
        }
      } else if (text->find("{instances}") == std::string::npos) {
        problemAt(f->value, path +
                                " must use {instances} so it measures one set of replicas "
                                "(new or stable), not the whole service");
      } else {
        *out = *text;
      }
    };
    query("request_rate", &metrics->queries.request_rate);
    query("error_rate", &metrics->queries.error_rate);
    query("latency_p95", &metrics->queries.latency_p95);
    if (driver_ == DriverKind::kScript) {
      for (std::string_view name : kQueryFields) {
        if (findField(qf, name) == nullptr) {
          problemAt(q->key, "health.metrics.queries." + std::string(name) +
                                " is required with the script driver (the defaults name the "
                                "process driver's replicas)");
        }
      }
    }
  } else if (driver_ == DriverKind::kScript && metrics->source == MetricsSource::kPrometheus) {
    problemAt(m.key,
              "health.metrics needs queries with the script driver: request_rate, error_rate "
              "and latency_p95, each using {version}");
  }
  if (driver_ == DriverKind::kScript && metrics->source != MetricsSource::kPrometheus) {
    problemAt(source_field != nullptr ? source_field->value : m.key,
              "the script driver reads metrics from Prometheus only: health.metrics.source: "
              "prometheus (there are no replicas of its own to scrape)");
  }
  if (const Field* f = findField(mf, "error_rate_increase")) {
    if (auto v = readNumber(*f, "health.metrics.error_rate_increase", 0.0, 100.0)) {
      metrics->error_rate_increase = *v;
    }
  }
  if (const Field* f = findField(mf, "latency_p95_ratio")) {
    if (auto v = readNumber(*f, "health.metrics.latency_p95_ratio", 1.0, 100.0)) {
      metrics->latency_p95_ratio = *v;
    }
  }
  if (const Field* f = findField(mf, "min_requests")) {
    if (auto n = readCount(*f, "health.metrics.min_requests", 1000000)) {
      metrics->min_requests = *n;
    }
  }
  if (const Field* f = findField(mf, "inconclusive")) {
    auto mode = readString(*f, "health.metrics.inconclusive");
    if (mode && *mode == "fail") {
      metrics->fail_when_inconclusive = true;
    } else if (mode && *mode != "wait") {
      problemAt(f->value,
                "health.metrics.inconclusive must be \"wait\" or \"fail\", not " + quote(*mode));
    }
  }
}

void PlanReader::readAlerts(const Field& field, Alerts* alerts) {
  if (!expectKind(field, YAML::NodeType::Map, "alerts")) return;
  const Fields fields = readFields(field.value, "alerts", kAlertFields);
  // A rule is a threshold in [min, max], or `off`.
  auto rule = [&](const char* name, double min, double max, std::optional<double>* into) {
    const Field* f = findField(fields, name);
    if (f == nullptr) return;
    if (isOff(f->value)) {
      into->reset();
      return;
    }
    if (auto v = readNumber(*f, "alerts." + std::string(name), min, max)) *into = *v;
  };
  rule("error_rate", 0.0, 1.0, &alerts->error_rate);
  rule("latency_p95_ratio", 1.0, 100.0, &alerts->latency_p95_ratio);
  rule("cpu", 0.0, 64.0, &alerts->cpu);
  rule("memory", 0.0, 1.0, &alerts->memory);
  if (const Field* f = findField(fields, "webhook")) {
    if (auto u = readHttpUrl(*f, "alerts.webhook")) alerts->webhook = *u;
  }
  if (const Field* f = findField(fields, "webhook_timeout")) {
    if (auto d = readDurationField(*f, "alerts.webhook_timeout", 100ms, 5min)) {
      alerts->webhook_timeout = *d;
    }
  }
  if (const Field* f = findField(fields, "webhook_attempts")) {
    if (auto n = readCount(*f, "alerts.webhook_attempts", 20)) alerts->webhook_attempts = *n;
  }
}

}  // namespace flotilla::common::plan_internal
