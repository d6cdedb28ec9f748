#include "coordinator/process_spec.hpp"

namespace flotilla::coordinator {

void buildProcessSpec(schema::ProcessSpec::Builder out, const common::Plan& plan,
                      const ProcessStepParams& step) {
  out.setService(plan.service);
  out.setVersion(plan.version);
  out.setPreviousVersion(step.previous_version);
  out.setCluster(step.cluster);
  out.setDeployment(step.deployment);

  // The script driver's watch has no replicas and no load balancer of Flotilla's.
  if (plan.driver == common::DriverKind::kProcess) {
    auto process = out.initProcess();
    process.setCommand(plan.process.command);
    process.setReplicas(plan.process.replicas);
    process.setPortMin(plan.process.port_min);
    process.setPortMax(plan.process.port_max);
    process.setHealthPath(plan.process.health_path);
  }

  if (plan.haproxy && plan.driver == common::DriverKind::kProcess) {
    auto traffic = out.initTraffic();
    traffic.setHaproxySocket(plan.haproxy->socket);
    traffic.setHaproxyBackend(plan.haproxy->backend);
  }

  const common::HttpHealth& http = plan.health.http;
  auto health = out.initHealth();
  health.setPath(http.path);
  health.setIntervalMs(static_cast<uint64_t>(step.interval.count() > 0 ? step.interval.count()
                                                                       : http.interval.count()));
  health.setTimeoutMs(static_cast<uint64_t>(http.timeout.count()));
  health.setFailureThreshold(http.failure_threshold);
  health.setUrl(http.url);

  if (const auto& m = plan.health.metrics) {
    auto metrics = out.initMetrics();
    metrics.setErrorRateIncrease(m->error_rate_increase);
    metrics.setLatencyP95Ratio(m->latency_p95_ratio);
    metrics.setMinRequests(m->min_requests);
    metrics.setFailWhenInconclusive(m->fail_when_inconclusive);
    if (m->source == common::MetricsSource::kPrometheus) {
      auto prometheus = metrics.initPrometheus();
      prometheus.setUrl(m->prometheus);
      prometheus.setRequestRate(m->queries.request_rate);
      prometheus.setErrorRate(m->queries.error_rate);
      prometheus.setLatencyP95(m->queries.latency_p95);
    }
  }

  if (const auto& a = plan.alerts) {
    auto alerts = out.initAlerts();
    alerts.setErrorRate(a->error_rate.value_or(0));
    alerts.setErrorRateOff(!a->error_rate);
    alerts.setLatencyP95Ratio(a->latency_p95_ratio.value_or(0));
    alerts.setLatencyP95RatioOff(!a->latency_p95_ratio);
    alerts.setCpu(a->cpu.value_or(0));
    alerts.setCpuOff(!a->cpu);
    alerts.setMemory(a->memory.value_or(0));
    alerts.setMemoryOff(!a->memory);
  }

  const common::Strategy& strategy = plan.strategyFor(step.wave);
  if (strategy.kind == common::StrategyKind::kRolling) {
    auto rolling = out.initRolling();
    rolling.setMaxUnavailable(strategy.max_unavailable);
    rolling.setMaxSurge(strategy.max_surge);
  }
  out.setWeight(step.weight);
  out.setDurationMs(static_cast<uint64_t>(step.duration.count()));
}

}  // namespace flotilla::coordinator
