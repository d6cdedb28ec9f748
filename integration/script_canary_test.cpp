// The script driver's safety net end to end: a team whose deploy is its own script (what
// `kubectl apply` and a weight on an ingress would be), here one that starts real
// flotilla-demo-service replicas and moves a real HAProxy's weights through its runtime API with
// socat, as `apply` runs once per canary step with FLOTILLA_WEIGHT. The agent watches the new
// version's health URL and asks a real Prometheus, which scrapes the replicas, for each
// version's figures; the coordinator rolls back when they say so.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/events.hpp"
#include "tests/support/files.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/haproxy.hpp"
#include "tests/support/net.hpp"
#include "tests/support/plans.hpp"
#include "tests/support/prometheus.hpp"
#include "tests/support/traffic.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

constexpr char kCluster[] = "staging-eu";

// The team's deploy script: a stable and a canary "Deployment" of two replicas each (srv1-2 and
// srv3-4 of HAProxy's backend), traffic split by server weights. `apply` per canary step;
// for blue-green `apply` brings the new set up at 0% and `switch` moves the traffic.
constexpr char kDeployScript[] = R"SH(#!/bin/sh
set -eu
run=@RUN@
hap() { printf '%s\n' "$1" | socat -t 2 - "UNIX-CONNECT:@SOCK@" >/dev/null; }
weights() {  # the canary's share, in percent
  for s in srv1 srv2; do hap "set weight checkout/$s $((100 - $1))"; done
  for s in srv3 srv4; do hap "set weight checkout/$s $1"; done
}
stop_set() {
  [ -f "$run/$1.pids" ] || return 0
  for pid in $(cat "$run/$1.pids"); do kill "$pid" 2>/dev/null || true; done
  rm -f "$run/$1.pids" "$run/$1.version"
}
start_set() {  # name first-slot version ports...
  name=$1; slot=$2; version=$3; shift 3
  stop_set "$name"
  for port in "$@"; do
    setsid @DEMO@ --port "$port" --version "$version" $(cat "$run/behaviour-$version" 2>/dev/null || true) \
      >>"$run/$name-$port.log" 2>&1 </dev/null &
    echo $! >>"$run/$name.pids"
  done
  for port in "$@"; do
    n=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/health"; do
      n=$((n + 1)); [ "$n" -lt 200 ] || { echo "replica on $port never became healthy"; exit 1; }
      sleep 0.05
    done
    hap "set server checkout/srv$slot addr 127.0.0.1 port $port"
    hap "set server checkout/srv$slot state ready"
    slot=$((slot + 1))
  done
  echo "$version" >"$run/$name.version"
}
case "$1:$FLOTILLA_STRATEGY" in
  apply:all_at_once)
    start_set stable 1 "$FLOTILLA_VERSION" @P1@ @P2@
    weights 0 ;;
  apply:canary)
    if [ "$(cat "$run/canary.version" 2>/dev/null || true)" != "$FLOTILLA_VERSION" ]; then
      start_set canary 3 "$FLOTILLA_VERSION" @P3@ @P4@
    fi
    weights "$FLOTILLA_WEIGHT"
    echo "$FLOTILLA_STEP $FLOTILLA_WEIGHT" >>"$run/weights.log" ;;
  apply:blue_green)  # the new version beside the old one, no traffic yet
    start_set canary 3 "$FLOTILLA_VERSION" @P3@ @P4@
    weights 0 ;;
  switch:*)
    weights "$FLOTILLA_WEIGHT"
    echo "$FLOTILLA_STEP $FLOTILLA_WEIGHT" >>"$run/weights.log" ;;
  rollback:*)
    weights 0
    hap "set server checkout/srv3 state maint"
    hap "set server checkout/srv4 state maint"
    stop_set canary
    echo "rollback 0" >>"$run/weights.log" ;;
esac
echo "$1 $FLOTILLA_VERSION at $FLOTILLA_WEIGHT% ($FLOTILLA_STRATEGY)"
)SH";

// Each version's figures, told apart by the demo service's demo_build_info{version} (what a
// Kubernetes team does with a pod label).
constexpr char kQueries[] = R"Q(
    queries:
      request_rate: 'sum(rate(http_requests_total[{window}]) * on(instance) group_left demo_build_info{version="{version}"})'
      error_rate: '(sum(rate(http_requests_total{code=~"5.."}[{window}]) * on(instance) group_left demo_build_info{version="{version}"}) or vector(0)) / sum(rate(http_requests_total[{window}]) * on(instance) group_left demo_build_info{version="{version}"})'
      latency_p95: 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[{window}]) * on(instance) group_left demo_build_info{version="{version}"}))'
)Q";

class ScriptCanaryTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    first_port_ = freePortBlock(4);
    run_ = dir() + "/run";
    std::filesystem::create_directories(run_);
    ASSERT_NO_FATAL_FAILURE(startCoordinator());
    ASSERT_NO_FATAL_FAILURE(startAgents({{kCluster, {{"environment", "staging"}}}}));
    haproxy_ = Haproxy::start(dir(), kCluster, "checkout", 4);
    ASSERT_TRUE(haproxy_);
    prometheus_ = Prometheus::start(dir(), first_port_, 4);
    ASSERT_TRUE(prometheus_);
    std::string script = kDeployScript;
    script = replaceAll(script, "@RUN@", run_);
    script = replaceAll(script, "@SOCK@", haproxy_->socketPath());
    script = replaceAll(script, "@DEMO@", kDemoServiceBinary);
    for (int i = 0; i < 4; ++i) {
      script = replaceAll(script, "@P" + std::to_string(i + 1) + "@", std::to_string(port(i)));
    }
    script_ = dir() + "/deploy.sh";
    writeFile(script_, script);
    ASSERT_EQ(::chmod(script_.c_str(), 0755), 0);
  }

  void TearDown() override {
    if (traffic_) traffic_->stop();
    // The replicas the script started, by the PIDs it wrote down.
    for (const char* set : {"stable", "canary"}) {
      std::istringstream pids(readFile(run_ + "/" + set + ".pids"));
      for (pid_t pid; pids >> pid;) {
        if (pid > 1) ::kill(pid, SIGKILL);
      }
    }
    prometheus_.reset();
    haproxy_.reset();
    FleetTest::TearDown();
  }

  int port(int i) const { return first_port_ + i; }

  // 1.0.0 on the stable replicas, everything else waiting for the canary.
  void deployBaseline() {
    const std::string id = submitPlan("baseline.yaml", R"(service: checkout
version: "1.0.0"
steps:
  apply: ")" + script_ + R"( apply"
  rollback: ")" + script_ + R"( rollback"
  timeout: 60s
waves:
  - name: staging
    clusters: [staging-eu]
)");
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(waitForState(id, "succeeded")) << events(id).dump(1);
    ASSERT_TRUE(waitUntil("Prometheus scraping the stable replicas", [&] {
      return prometheus_->scrapes("127.0.0.1:(" + std::to_string(port(0)) + "|" +
                                  std::to_string(port(1)) + ")");
    }));
    traffic_ = std::make_unique<TrafficGenerator>(haproxy_->url(), 2, std::chrono::milliseconds(5));
    traffic_->start();
    // The old version's traffic is in Prometheus (two scrapes apart) before anything compares
    // with it: the analysis and the bake's baseline ask for exactly that.
    ASSERT_TRUE(waitUntil("Prometheus seeing 1.0.0's requests", [&] {
      auto rate = prometheus_->value(
          "sum(rate(http_requests_total[5s]) * on(instance) group_left "
          "demo_build_info{version=\"1.0.0\"})");
      return rate && *rate > 0;
    }));
  }

  // The canary plan for 2.0.0: 10 -> 50 -> 100, `pause` between, with `health` and metrics.
  std::string canaryPlan(const std::string& pause, const std::string& health) {
    return R"(service: checkout
version: "2.0.0"
steps:
  apply: ")" +
           script_ + R"( apply"
  rollback: ")" +
           script_ + R"( rollback"
  timeout: 60s
strategy: {type: canary, steps: [10, 50, 100], pause: )" +
           pause + R"(}
)" + health +
           R"(
waves:
  - name: staging
    clusters: [staging-eu]
)";
  }

  std::string metricsHealth() const {
    return "health:\n  http: {url: \"http://127.0.0.1:" + std::to_string(port(2)) +
           "/health?v={version}&c={cluster}\", interval: 500ms}\n  metrics:\n    source: "
           "prometheus\n    prometheus: " +
           prometheus_->url() + "\n    min_requests: 20" + kQueries;
  }

  std::vector<std::string> weightsLog() { return readLines(run_ + "/weights.log"); }

  // The weight HAProxy gives each of the backend's servers, by name.
  std::map<std::string, int> weights() {
    std::map<std::string, int> out;
    auto servers = haproxy_->servers();
    if (!servers) return out;
    for (const auto& s : *servers) out[s.name] = s.serving() ? s.weight : 0;
    return out;
  }

  std::string finalFailure(const std::string& id) {
    json d = deployment(id);
    return d["failure"].is_object() ? d["failure"].value("message", "") : d.dump(1);
  }

  int first_port_ = 0;
  std::string run_;
  std::string script_;
  std::unique_ptr<Haproxy> haproxy_;
  std::unique_ptr<Prometheus> prometheus_;
  std::unique_ptr<TrafficGenerator> traffic_;
};

TEST_F(ScriptCanaryTest, GoodVersionGoesTenFiftyHundredWithNoFailedRequest) {
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const std::string id = submitPlan("canary.yaml", canaryPlan("3s", metricsHealth()));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "succeeded", 90s)) << finalFailure(id) << events(id).dump(1);
  traffic_->stop();

  // apply at 10%, then two shifts that run apply again, an analysis after each step below 100.
  EXPECT_EQ(weightsLog(), (std::vector<std::string>{"apply 10", "shift 50", "shift 100"}));
  const json ev = events(id);
  const auto analyses = stepEvents(ev, "stage.succeeded", kCluster, "analyze");
  ASSERT_EQ(analyses.size(), 2u) << ev.dump(1);
  for (const auto& a : analyses) {
    EXPECT_TRUE(contains(a.value("message", ""), "analysis passed")) << a.dump();
    EXPECT_TRUE(contains(a.value("message", ""), "health checks passed")) << a.dump();
  }
  // All the traffic on the canary's servers, and not one request failed on the way.
  const auto w = weights();
  EXPECT_EQ(w.at("srv1"), 0);
  EXPECT_EQ(w.at("srv3"), 100);
  const Tally t = tally(traffic_->answers());
  EXPECT_EQ(t.failed, 0u) << t.describe();
  EXPECT_GT(t.of("1.0.0"), 0u) << t.describe();
  EXPECT_GT(t.of("2.0.0"), 0u) << t.describe();
  const auto last = sendRequests(haproxy_->url(), 20);
  EXPECT_EQ(tally(last).of("2.0.0"), 20u) << tally(last).describe();
}

TEST_F(ScriptCanaryTest, TwentyPercentErrorsRolledBackAtTenPercentByPrometheus) {
  writeFile(run_ + "/behaviour-2.0.0", "--error-rate 0.2");
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  // No `alerts:` section: the workflow's thresholds apply.
  const std::string id = submitPlan("canary.yaml", canaryPlan("3s", metricsHealth()));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "rolled_back", 90s)) << events(id).dump(1);
  traffic_->stop();

  json d = deployment(id);
  EXPECT_EQ(d["failure"].value("step", ""), "analyze") << d.dump(1);
  EXPECT_TRUE(contains(finalFailure(id), "error rate")) << finalFailure(id);
  EXPECT_EQ(weightsLog(), (std::vector<std::string>{"apply 10", "rollback 0"}));
  // The default error-rate alert fired for the new version.
  const json ev = events(id);
  const auto alerts = eventsOf(ev, "alert", kCluster);
  ASSERT_FALSE(alerts.empty()) << ev.dump(1);
  EXPECT_TRUE(contains(alerts[0].value("message", ""), "error rate")) << alerts[0].dump();
  // Everything back on 1.0.0; the canary's replicas gone.
  const auto w = weights();
  EXPECT_EQ(w.at("srv1"), 100);
  EXPECT_EQ(w.at("srv3"), 0);
  const auto after = sendRequests(haproxy_->url(), 20);
  EXPECT_EQ(tally(after).of("1.0.0"), 20u) << tally(after).describe();
  EXPECT_FALSE(fileExists(run_ + "/canary.pids"));
  // Only the canary answered 500s, and only while it had its 10%.
  for (const auto& a : traffic_->answers()) {
    if (a.failed()) {
      EXPECT_EQ(a.version, "2.0.0") << a.describe();
    }
  }
}

TEST_F(ScriptCanaryTest, FailingHealthRolledBackOnTheFourthFailureNotTheThird) {
  writeFile(run_ + "/behaviour-2.0.0", "--health-fail-after 1s");
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const std::string health =
      "health:\n  http: {url: \"http://127.0.0.1:" + std::to_string(port(2)) +
      "/health\", interval: 300ms, failure_threshold: 3}\n";
  const std::string id = submitPlan("canary.yaml", canaryPlan("20s", health));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "rolled_back", 90s)) << events(id).dump(1);

  json d = deployment(id);
  EXPECT_EQ(d["failure"].value("step", ""), "analyze") << d.dump(1);
  EXPECT_TRUE(contains(finalFailure(id), "health check failed 4 times in a row"))
      << finalFailure(id);
  // The third failure was tolerated (and said so in the step's output).
  EXPECT_TRUE(contains(readFile(agentLog(kCluster)) + events(id).dump(), "3 in a row"));
  EXPECT_EQ(weightsLog(), (std::vector<std::string>{"apply 10", "rollback 0"}));
  EXPECT_EQ(weights().at("srv1"), 100);
}

TEST_F(ScriptCanaryTest, BlueGreenTwentyTimesSlowerRolledBackDuringBake) {
  writeFile(run_ + "/behaviour-2.0.0", "--latency-ms 100");
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const std::string id = submitPlan("blue-green.yaml", R"(service: checkout
version: "2.0.0"
steps:
  apply: ")" + script_ + R"( apply"
  switch: ")" + script_ + R"( switch"
  rollback: ")" + script_ + R"( rollback"
  timeout: 60s
strategy: {type: blue_green}
)" + metricsHealth() + R"(
waves:
  - name: staging
    clusters: [staging-eu]
    bake: 8s
)");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "rolled_back", 90s)) << events(id).dump(1);
  traffic_->stop();

  json d = deployment(id);
  EXPECT_EQ(d["failure"].value("step", ""), "bake") << d.dump(1);
  EXPECT_TRUE(contains(finalFailure(id), "bake failed against 1.0.0")) << finalFailure(id);
  EXPECT_TRUE(contains(finalFailure(id), "p95")) << finalFailure(id);
  // All of it at once by `switch`, then back by `rollback`.
  EXPECT_EQ(weightsLog(), (std::vector<std::string>{"shift 100", "rollback 0"}));
  EXPECT_EQ(weights().at("srv1"), 100);
  const auto after = sendRequests(haproxy_->url(), 20);
  EXPECT_EQ(tally(after).of("1.0.0"), 20u) << tally(after).describe();
}

}  // namespace
}  // namespace flotilla::integration
