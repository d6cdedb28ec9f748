// Progressive delivery end to end: the process driver runs flotilla-demo-service replicas, a
// real HAProxy per cluster splits real traffic between them, and the canary, blue-green, health
// and metric rules decide, as the test watches every answer its clients get.
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <set>

#include "tests/support/http_server.hpp"
#include "tests/support/prometheus.hpp"
#include "tests/support/service_fleet.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// The plans' canary: 10% -> 50% -> 100%, 2 s apart. At ~250 requests/s per cluster a 10%
// canary gets ~50 requests in a 2 s analysis window (the plans ask for 20).
const std::string kCanarySteps = canarySteps("2s");
// The analysis by direct scrape: the new version's error rate and p95 latency against the old
// one's.
constexpr char kStrictMetrics[] =
    "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, min_requests: 20}";
constexpr char kLenientMetrics[] =
    "{error_rate_increase: 0.5, latency_p95_ratio: 3.0, min_requests: 20}";

class CanaryTest : public ServiceFleetTest {
 protected:
  // The coordinator (its alert webhooks may go to the test's receiver on loopback), then per
  // cluster its HAProxy and its agent.
  void startClusters(const ServiceShape& shape) {
    CoordinatorOptions options;
    options.extra_args = {"--webhook-allow", "http://127.0.0.1:"};
    ASSERT_NO_FATAL_FAILURE(ServiceFleetTest::startClusters(shape, options));
  }

  // Between the baseline and the rollout's traffic.
  virtual void beforeRollout() {}

  // `shape`'s clusters on the 1.0.0 baseline with traffic on every one, then `plan` (on this
  // test's ports, through the shape's waves) submitted as `file`: its id, "" after a failure
  // (recorded).
  std::string startRollout(const ServiceShape& shape, const std::string& file, ProcessPlan plan) {
    EXPECT_NO_FATAL_FAILURE(startClusters(shape));
    if (HasFatalFailure()) return "";
    EXPECT_NO_FATAL_FAILURE(deployBaseline());
    if (HasFatalFailure()) return "";
    EXPECT_NO_FATAL_FAILURE(beforeRollout());
    if (HasFatalFailure()) return "";
    EXPECT_NO_FATAL_FAILURE(startTraffic());
    if (HasFatalFailure()) return "";
    const std::string id = submitPlan(file, processPlan(std::move(plan)).yaml());
    submitted_ = std::chrono::steady_clock::now();
    return id;
  }

  // `flotilla wait` for `id` (wait_, and took_ since the submission), then the traffic stopped
  // (answers_).
  void finishRollout(const std::string& id, const std::string& timeout = "60s") {
    wait_ = cli({"wait", id, "--timeout", timeout});
    took_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  submitted_);
    answers_ = stopTraffic();
  }

  // startRollout, then finishRollout.
  std::string rollOut(const ServiceShape& shape, const std::string& file, const ProcessPlan& plan,
                      const std::string& timeout = "60s") {
    const std::string id = startRollout(shape, file, plan);
    if (!id.empty()) finishRollout(id, timeout);
    return id;
  }

  // The rollout succeeded, and the CLI said so.
  void expectSucceeded(const std::string& id) {
    EXPECT_EQ(wait_.exit_code, 0) << wait_.out << wait_.err << deployment(id).dump(2);
    EXPECT_TRUE(contains(wait_.out, id + " succeeded")) << wait_.out;
  }

  // The rollout was rolled back, and the CLI said so.
  void expectRolledBack(const std::string& id) {
    EXPECT_EQ(wait_.exit_code, 1) << wait_.out << wait_.err;
    EXPECT_TRUE(contains(wait_.out, id + " rolled_back")) << wait_.out;
    EXPECT_EQ(stateOf(id), "rolled_back") << deployment(id).dump(2);
  }

  // The deployment failed on `cluster`'s `step`, with every one of `words` in the message.
  void expectFailureAt(const std::string& id, const std::string& cluster, const std::string& step,
                       const std::vector<std::string>& words) {
    json detail = deployment(id);
    ASSERT_TRUE(detail.is_object());
    ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
    EXPECT_EQ(detail["failure"]["cluster"], cluster) << detail.dump(2);
    EXPECT_EQ(detail["failure"]["step"], step) << detail.dump(2);
    const std::string message = detail["failure"].value("message", "");
    for (const auto& w : words) EXPECT_TRUE(contains(message, w)) << w << " in: " << message;
  }

  // Both analyses of `cluster` (at 10% and at 50%) passed.
  static void expectAnalysesPassed(const json& ev, const std::string& cluster) {
    const auto analyses = stepEvents(ev, "stage.succeeded", cluster, "analyze");
    ASSERT_EQ(analyses.size(), 2u) << ev.dump(1);
    for (const auto& a : analyses) {
      EXPECT_TRUE(contains(a.value("message", ""), "analysis passed")) << a.dump();
    }
  }

  // Every request that failed was answered by 2.0.0 with a 500: the old version and HAProxy
  // never failed one.
  static void expectOnlyTheNewVersionFailed(const std::vector<Answer>& answers) {
    for (const auto& a : answers) {
      if (!a.failed()) continue;
      EXPECT_EQ(a.status, 500) << a.describe();
      EXPECT_EQ(a.version, "2.0.0") << a.describe();
    }
  }

  // The end of a good rollout on `cluster`: every answer is `version`, the agent holds
  // `version` only, on live replicas that HAProxy serves, and the baseline's are stopped.
  void expectOnNewVersion(const std::string& cluster, const std::string& version) {
    expectOnlyVersion(cluster, version);
    json record = serviceRecord(cluster);
    ASSERT_TRUE(record.is_object()) << serviceRecordText(cluster);
    EXPECT_EQ(record["stable"].value("version", ""), version) << record.dump(2);
    EXPECT_TRUE(record["candidate"].is_null()) << record.dump(2);
    const auto stable = replicasOf(record["stable"]);
    EXPECT_EQ(stable.size(), static_cast<size_t>(kReplicas)) << record.dump(2);
    for (const auto& r : stable) EXPECT_TRUE(replicaAlive(r)) << "pid " << r.pid;
    for (const auto& r : baseline_replicas_[cluster]) {
      EXPECT_FALSE(replicaAlive(r)) << "1.0.0 replica pid " << r.pid << " still runs";
    }
    expectServing(cluster, portsOf(stable));
  }

  // After a rollback that touched `rolled`: each cluster answers 1.0.0 only and holds only
  // 1.0.0 replicas; those are the very baseline processes, except on `restarted` (clusters
  // that had finished with the new version, whose old set had to be started again); the
  // untouched clusters still have the record the baseline left; no 2.0.0 process is left.
  void expectBackOnBaseline(const std::set<std::string>& rolled,
                            const std::set<std::string>& restarted = {}) {
    for (const auto& c : shape_.clusters) {
      SCOPED_TRACE(c.cluster);
      expectOnlyVersion(c.cluster, "1.0.0");
      json record = serviceRecord(c.cluster);
      ASSERT_TRUE(record.is_object()) << serviceRecordText(c.cluster);
      EXPECT_EQ(record["stable"].value("version", ""), "1.0.0") << record.dump(2);
      EXPECT_TRUE(record["candidate"].is_null()) << record.dump(2);
      const auto stable = replicasOf(record["stable"]);
      EXPECT_EQ(stable.size(), static_cast<size_t>(kReplicas)) << record.dump(2);
      for (const auto& r : stable) EXPECT_TRUE(replicaAlive(r)) << "pid " << r.pid;
      expectServing(c.cluster, portsOf(stable));
      const auto& baseline = baseline_replicas_[c.cluster];
      if (restarted.count(c.cluster)) {
        for (const auto& r : baseline) {
          EXPECT_FALSE(replicaAlive(r)) << "baseline replica pid " << r.pid << " still runs";
        }
      } else {
        EXPECT_EQ(portsOf(stable), portsOf(baseline)) << "the stable set was restarted";
        for (const auto& r : baseline) {
          EXPECT_TRUE(replicaAlive(r)) << "baseline replica pid " << r.pid << " on " << r.port;
        }
      }
      if (!rolled.count(c.cluster)) {
        EXPECT_EQ(serviceRecordText(c.cluster), baseline_record_[c.cluster])
            << "the record of an untouched cluster changed";
      }
    }
    expectOnlyDemoVersion("1.0.0", kReplicas * shape_.clusters.size());
  }

  // Every demo-service process of the test runs `version` (and there are `count` of them,
  // unless `count` is 0).
  void expectOnlyDemoVersion(const std::string& version, size_t count = 0) {
    const auto running = demoProcesses();
    if (count > 0) {
      EXPECT_EQ(running.size(), count) << describe(running);
    }
    for (const auto& p : running) EXPECT_EQ(p.version, version) << describe(running);
  }

  CommandResult wait_;
  std::chrono::steady_clock::time_point submitted_;
  std::chrono::milliseconds took_{0};
  std::map<std::string, std::vector<Answer>> answers_;
};

// ---- A good version: 10% -> 50% -> 100% on two clusters, one wave after the other -----------

TEST_F(CanaryTest, GoodCanary) {
  const std::string id =
      rollOut(kTwoWaves, "good.yaml",
              {.version = "2.0.0", .strategy = kCanarySteps, .metrics = kLenientMetrics});
  ASSERT_FALSE(id.empty());
  expectSucceeded(id);

  const json ev = events(id);
  for (const char* bad :
       {"stage.failed", "cluster.failed", "deployment.rolling_back", "rollback.started"}) {
    EXPECT_EQ(findEvent(ev, bad), -1) << "unexpected " << bad << " in " << ev.dump(1);
  }
  // The production wave started only once staging was done.
  EXPECT_GT(findEvent(ev, "wave.started", "production"),
            findEvent(ev, "wave.succeeded", "staging"));

  for (const auto& c : kTwoWaves.clusters) {
    SCOPED_TRACE(c.cluster);
    const std::vector<Answer>& all = answers_[c.cluster];
    Tally whole = tally(all);
    // Not one request failed while the version changed under it.
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    EXPECT_GT(whole.of("2.0.0"), 0u) << whole.describe();

    // Each analysis passed (the new version's metrics against the old one's).
    ASSERT_NO_FATAL_FAILURE(expectAnalysesPassed(ev, c.cluster));

    // The phases, from the coordinator's events: the answers sent after a shift had succeeded
    // and before the next shift started saw that shift's weights.
    const auto deploy = timesOf(stepEvents(ev, "stage.started", c.cluster, "deploy"));
    const auto shift_started = timesOf(stepEvents(ev, "stage.started", c.cluster, "shift"));
    const auto shift_done = timesOf(stepEvents(ev, "stage.succeeded", c.cluster, "shift"));
    ASSERT_EQ(deploy.size(), 1u);
    ASSERT_EQ(shift_started.size(), 3u);
    ASSERT_EQ(shift_done.size(), 3u);

    Tally before = tallyBetween(all, SystemTime::min(), deploy[0]);
    EXPECT_EQ(before.of("1.0.0"), before.total) << "before the deploy: " << before.describe();
    Tally at10 = tallyBetween(all, shift_done[0], shift_started[1]);
    Tally at50 = tallyBetween(all, shift_done[1], shift_started[2]);
    Tally at100 = tallyBetween(all, shift_done[2], SystemTime::max());
    ASSERT_GE(at10.total, kMinAnswersInPhase) << "at 10%: " << at10.describe();
    ASSERT_GE(at50.total, kMinAnswersInPhase) << "at 50%: " << at50.describe();
    ASSERT_GE(at100.total, kMinAnswersInPhase) << "at 100%: " << at100.describe();
    // Both versions answered at 10% and at 50%, the new one more at 50% ...
    EXPECT_GT(at10.of("2.0.0"), 0u) << "at 10%: " << at10.describe();
    EXPECT_GT(at10.of("1.0.0"), 0u) << "at 10%: " << at10.describe();
    EXPECT_GT(at50.of("1.0.0"), 0u) << "at 50%: " << at50.describe();
    EXPECT_GT(at50.share("2.0.0"), at10.share("2.0.0"))
        << "at 10%: " << at10.describe() << "; at 50%: " << at50.describe();
    // ... near the weights asked for (HAProxy's roundrobin follows weights closely) ...
    EXPECT_GE(at10.share("2.0.0"), 0.04) << at10.describe();
    EXPECT_LE(at10.share("2.0.0"), 0.20) << at10.describe();
    EXPECT_GE(at50.share("2.0.0"), 0.35) << at50.describe();
    EXPECT_LE(at50.share("2.0.0"), 0.65) << at50.describe();
    // ... and only the new one from the shift to 100% on.
    EXPECT_EQ(at100.of("2.0.0"), at100.total) << "at 100%: " << at100.describe();
    std::cerr << "[canary] " << c.cluster << ": at 10%: " << at10.describe()
              << "; at 50%: " << at50.describe() << "; at 100%: " << at100.describe() << "\n";

    // The end: every answer is 2.0.0, the agent holds 2.0.0 only, 1.0.0 is stopped.
    expectOnNewVersion(c.cluster, "2.0.0");
  }
  expectOnlyDemoVersion("2.0.0", kReplicas * kTwoWaves.clusters.size());

  // The production cluster served the old version only until its own wave began.
  const auto prod_deploy = timesOf(stepEvents(ev, "stage.started", "prod-eu-1", "deploy"));
  const auto staging_done = timesOf(eventsOf(ev, "cluster.succeeded", "staging-eu"));
  ASSERT_EQ(prod_deploy.size(), 1u);
  ASSERT_EQ(staging_done.size(), 1u);
  EXPECT_LE(staging_done[0], prod_deploy[0]);
  Tally prod_before = tallyBetween(answers_["prod-eu-1"], SystemTime::min(), prod_deploy[0]);
  EXPECT_EQ(prod_before.of("1.0.0"), prod_before.total) << prod_before.describe();
  EXPECT_GE(prod_before.total, kMinAnswersInPhase) << prod_before.describe();
}

// ---- Bad versions: caught at the first canary step, rolled back, later waves untouched ------

// `watch` on a pipe during a canary: a line per change of a cluster, with its strategy step,
// the traffic weight and from -> to versions, a cluster.analysis line with the figures of each
// analysis window (both sets, the limits, the verdict, the health streak) as the agent measured
// them, and the step's result; no output lines unless asked for. Afterwards `status` and the
// API still show each cluster's last figures, and the events carry them as data.
TEST_F(CanaryTest, WatchOnAPipeShowsStepWeightVersionsAndFigures) {
  const std::string id =
      startRollout(kTwoWaves, "watched.yaml",
                   {.version = "2.0.0", .strategy = kCanarySteps, .metrics = kLenientMetrics});
  ASSERT_FALSE(id.empty());
  CommandResult watch = cli({"watch", id}, 120s);
  finishRollout(id);
  expectSucceeded(id);
  EXPECT_EQ(watch.exit_code, 0) << watch.out << watch.err;
  for (const char* expected :
       {"cluster  prod-eu-1 analyzing  analyze 1/3 10%  1.0.0 → 2.0.0",
        "cluster  prod-eu-1 analyzing  analyze 2/3 50%  1.0.0 → 2.0.0",
        "cluster  staging-eu analyzing  analyze 2/3 50%  1.0.0 → 2.0.0", "analysis passed over",
        id.c_str(), "cluster.analysis", "analysis 1/3: 2.0.0 err ", "analysis 2/3: 2.0.0 err ",
        " vs 1.0.0 err ", "; limits err ", "; pass · health 0/3 failing"}) {
    EXPECT_TRUE(contains(watch.out, expected)) << expected << " not in:\n" << watch.out;
  }
  EXPECT_FALSE(contains(watch.out, "stage.output")) << watch.out;

  CommandResult status = cli({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  for (const char* expected : {"Last analysis", "  staging-eu  analysis 2/3: 2.0.0 err ",
                               "  prod-eu-1  analysis 2/3: 2.0.0 err "}) {
    EXPECT_TRUE(contains(status.out, expected)) << expected << " not in:\n" << status.out;
  }
  const json detail = deployment(id);
  for (const auto& wave : detail["waves"]) {
    for (const auto& cluster : wave["clusters"]) {
      const json& figures = cluster["figures"];
      ASSERT_TRUE(figures.is_object()) << cluster.dump(2);
      EXPECT_EQ(figures["candidate"]["version"], "2.0.0");
      EXPECT_EQ(figures["stable"]["version"], "1.0.0");
      EXPECT_GE(figures["candidate"]["requests"].get<int>(), 20) << figures.dump();
      EXPECT_TRUE(figures["limits"]["error_rate"].is_number()) << figures.dump();
    }
  }
  int with_data = 0;
  for (const auto& event : events(id)) {
    if (event["type"] != "cluster.analysis") continue;
    EXPECT_TRUE(event["data"].is_object()) << event.dump();
    EXPECT_EQ(event["data"]["step"], "analyze") << event.dump();
    ++with_data;
  }
  EXPECT_GE(with_data, 4) << "two windows on each of two clusters";
}

class BadCanaryTest : public CanaryTest {
 protected:
  // Baseline on three clusters in three waves, then 2.0.0 (its command line ending in `extra`)
  // as a canary with traffic on all three; returns the deployment id once it ended, which must
  // be rolled back (checked here).
  std::string rollOutBadVersion(const std::string& extra, const std::string& metrics,
                                const std::string& alerts = "") {
    const std::string id = rollOut(kThreeWaves, "bad.yaml",
                                   {.version = "2.0.0",
                                    .command_extra = extra,
                                    .strategy = kCanarySteps,
                                    .metrics = metrics,
                                    .alerts = alerts});
    if (!id.empty()) expectRolledBack(id);
    return id;
  }

  // The failure is staging-eu's first analysis, whose message contains every `words`; only
  // staging-eu ran anything and rolled back; waves 2 and 3 never started; traffic elsewhere
  // never noticed; everything is back on the untouched 1.0.0 replicas.
  void expectCaughtAtFirstAnalysis(const std::string& id, const std::vector<std::string>& words) {
    ASSERT_NO_FATAL_FAILURE(expectFailureAt(id, "staging-eu", "analyze", words));
    json detail = deployment(id);
    EXPECT_TRUE(contains(detail.value("reason", ""), "analyze")) << detail.dump(2);
    ASSERT_EQ(detail["waves"].size(), 3u);
    EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
    EXPECT_EQ(detail["waves"][1]["state"], "skipped");
    EXPECT_EQ(detail["waves"][2]["state"], "skipped");
    EXPECT_TRUE(detail["rollback_failed_clusters"].empty()) << detail.dump(2);

    const json ev = events(id);
    EXPECT_EQ(ev.back()["type"], "deployment.rolled_back");
    // Caught at 10%: one shift, then the analysis that failed.
    EXPECT_EQ(stepEvents(ev, "stage.started", "staging-eu", "shift").size(), 1u) << ev.dump(1);
    const auto failed = stepEvents(ev, "stage.failed", "staging-eu", "analyze");
    ASSERT_EQ(failed.size(), 1u) << ev.dump(1);
    for (const auto& w : words) {
      EXPECT_TRUE(contains(failed[0].value("message", ""), w)) << w << " in " << failed[0].dump();
    }
    const auto rolled = eventsOf(ev, "rollback.succeeded", "staging-eu");
    ASSERT_EQ(rolled.size(), 1u) << ev.dump(1);
    for (const char* untouched : {"prod-eu-1", "prod-us-1"}) {
      for (const auto& e : ev) {
        EXPECT_NE(e.value("cluster", ""), untouched)
            << "event for an unreached cluster: " << e.dump();
      }
    }
    EXPECT_EQ(findEvent(ev, "wave.started", "prod-eu"), -1);
    EXPECT_EQ(findEvent(ev, "wave.started", "prod-us"), -1);

    // Traffic. staging-eu: the new version did answer some requests, and after the rollback
    // only the old one did.
    const auto back = timesOf(rolled);
    Tally staging = tally(answers_["staging-eu"]);
    EXPECT_GT(staging.of("2.0.0"), 0u) << staging.describe();
    EXPECT_GE(staging.of("1.0.0"), kMinAnswersInPhase) << staging.describe();
    Tally after = tallyBetween(answers_["staging-eu"], back[0], SystemTime::max());
    EXPECT_EQ(after.of("1.0.0"), after.total) << "after the rollback: " << after.describe();
    EXPECT_EQ(after.failed, 0u) << "after the rollback: " << after.describe();
    // The later waves' clusters served 1.0.0 throughout, without a single failure.
    for (const char* untouched : {"prod-eu-1", "prod-us-1"}) {
      Tally t = tally(answers_[untouched]);
      EXPECT_GE(t.total, kMinAnswersInPhase) << untouched << ": " << t.describe();
      EXPECT_EQ(t.of("1.0.0"), t.total) << untouched << ": " << t.describe();
      EXPECT_EQ(t.failed, 0u) << untouched << ": " << t.describe();
    }

    expectBackOnBaseline({"staging-eu"});
  }
};

TEST_F(BadCanaryTest, BadCanaryRolledBack) {
  const std::string id = rollOutBadVersion(onlyFor("2.0.0", "--error-rate 0.2"), kStrictMetrics);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"error rate"}));
  // The plan has no `alerts:`: the workflow's thresholds apply (errors over 5%).
  const json ev = events(id);
  const auto alerts = eventsOf(ev, "alert", "staging-eu");
  ASSERT_GE(alerts.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(contains(alerts[0].value("message", ""), "over the 0.050 alert threshold"))
      << alerts[0].dump();

  expectOnlyTheNewVersionFailed(answers_["staging-eu"]);
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_GT(staging.failed, 0u) << "the bad version never failed a request: " << staging.describe();
  std::cerr << "[canary] bad version rolled back " << took_.count() << " ms after submission; "
            << "staging-eu traffic: " << staging.describe() << "\n";
}

TEST_F(BadCanaryTest, SlowVersionRolledBackByLatency) {
  const std::string id = rollOutBadVersion(onlyFor("2.0.0", "--latency-ms 60"), kStrictMetrics);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"latency"}));
  // Slow is not failed: every request was answered.
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_EQ(staging.failed, 0u) << staging.describe();
  const std::string message = deployment(id)["failure"].value("message", "");
  EXPECT_FALSE(contains(message, "error rate 0.")) << "rolled back for errors: " << message;
  std::cerr << "[canary] slow version rolled back " << took_.count() << " ms after submission; "
            << message << "\n";
}

// The new version is bad only on prod-eu-1 (wave 2): staging-eu had already finished with it,
// so the rollback starts 1.0.0 there again, after prod-eu-1, newest wave first; prod-us-1
// (wave 3) is never touched.
TEST_F(BadCanaryTest, BadCanaryInSecondWaveRollsBackEveryClusterItReached) {
  const std::string id = rollOutBadVersion(
      " $(test {version}-{cluster} = 2.0.0-prod-eu-1 && echo --error-rate 0.2)", kLenientMetrics);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectFailureAt(id, "prod-eu-1", "analyze", {"error rate"}));
  json detail = deployment(id);
  ASSERT_EQ(detail["waves"].size(), 3u);
  EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][1]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][2]["state"], "skipped");

  const json ev = events(id);
  EXPECT_EQ(ev.back()["type"], "deployment.rolled_back");
  const auto staging_done = timesOf(eventsOf(ev, "cluster.succeeded", "staging-eu"));
  ASSERT_EQ(staging_done.size(), 1u) << "staging-eu never finished with 2.0.0: " << ev.dump(1);
  const int prod_back = findEvent(ev, "rollback.succeeded", "prod-eu", "prod-eu-1");
  const int staging_start = findEvent(ev, "rollback.started", "staging", "staging-eu");
  const int staging_back = findEvent(ev, "rollback.succeeded", "staging", "staging-eu");
  ASSERT_GE(prod_back, 0) << ev.dump(1);
  ASSERT_GE(staging_back, 0) << ev.dump(1);
  EXPECT_LT(prod_back, staging_start) << "wave 1 rolled back before wave 2";
  for (const auto& e : ev) {
    EXPECT_NE(e.value("cluster", ""), "prod-us-1")
        << "event for an unreached cluster: " << e.dump();
  }

  // staging-eu: all 2.0.0 once it finished, all 1.0.0 once rolled back, not one failure on the
  // way there or back.
  const auto staging_back_at = timeOf(ev[staging_back]);
  const auto staging_rollback_at = timeOf(ev[staging_start]);
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_EQ(staging.failed, 0u) << staging.describe();
  Tally staging_on_new = tallyBetween(answers_["staging-eu"], staging_done[0], staging_rollback_at);
  EXPECT_GE(staging_on_new.total, kMinAnswersInPhase) << staging_on_new.describe();
  EXPECT_EQ(staging_on_new.of("2.0.0"), staging_on_new.total) << staging_on_new.describe();
  Tally staging_after = tallyBetween(answers_["staging-eu"], staging_back_at, SystemTime::max());
  EXPECT_EQ(staging_after.of("1.0.0"), staging_after.total) << staging_after.describe();
  // prod-eu-1: only the bad canary failed requests; 1.0.0 answered all after its rollback.
  expectOnlyTheNewVersionFailed(answers_["prod-eu-1"]);
  const auto prod_back_at = timeOf(ev[prod_back]);
  Tally prod_after = tallyBetween(answers_["prod-eu-1"], prod_back_at, SystemTime::max());
  EXPECT_EQ(prod_after.of("1.0.0"), prod_after.total) << prod_after.describe();
  // prod-us-1: 1.0.0 throughout.
  Tally us = tally(answers_["prod-us-1"]);
  EXPECT_EQ(us.failed, 0u) << us.describe();
  EXPECT_EQ(us.of("1.0.0"), us.total) << us.describe();

  expectBackOnBaseline({"staging-eu", "prod-eu-1"}, {"staging-eu"});
}

// ---- Health checks ---------------------------------------------------------------------------

// /health fails from the first moment: the deploy never gets the new replicas into traffic and
// the failure threshold (3 tolerated, the 4th triggers) ends it.
TEST_F(CanaryTest, HealthFailsOnFourth) {
  const std::string id = rollOut(kTwoWaves, "unhealthy.yaml",
                                 {.version = "2.0.0",
                                  .command_extra = onlyFor("2.0.0", "--health-fail-after 0s"),
                                  .strategy = kCanarySteps},
                                 "50s");
  ASSERT_FALSE(id.empty());
  expectRolledBack(id);
  ASSERT_NO_FATAL_FAILURE(expectFailureAt(id, "staging-eu", "deploy", {"health", "503"}));

  const json ev = events(id);
  const auto started = timesOf(stepEvents(ev, "stage.started", "staging-eu", "deploy"));
  const auto failed = stepEvents(ev, "stage.failed", "staging-eu", "deploy");
  ASSERT_EQ(started.size(), 1u) << ev.dump(1);
  ASSERT_EQ(failed.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(contains(failed[0].value("message", ""), "503")) << failed[0].dump();
  // The plan's failure_threshold decides, not a start-up allowance of half a minute.
  EXPECT_TRUE(contains(failed[0].value("message", ""), "4 times in a row")) << failed[0].dump();
  EXPECT_EQ(findEvent(ev, "stage.started", "production"), -1);
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-eu-1").empty());

  // The unhealthy replicas never got a request; the old ones answered all of them.
  for (const auto& c : kTwoWaves.clusters) {
    Tally t = tally(answers_[c.cluster]);
    EXPECT_EQ(t.failed, 0u) << c.cluster << ": " << t.describe();
    EXPECT_EQ(t.of("1.0.0"), t.total) << c.cluster << ": " << t.describe();
  }
  expectBackOnBaseline({"staging-eu"});
}

// /health starts failing after the new version took its first share of traffic: the analysis
// tolerates three failed checks in a row and rolls back on the fourth.
TEST_F(CanaryTest, HealthFailsOnFourthDuringAnalysis) {
  const std::string id = rollOut(kTwoWaves, "fails-later.yaml",
                                 {.version = "2.0.0",
                                  .command_extra = onlyFor("2.0.0", "--health-fail-after 2s"),
                                  .strategy = kCanarySteps});
  ASSERT_FALSE(id.empty());
  expectRolledBack(id);
  ASSERT_NO_FATAL_FAILURE(expectFailureAt(id, "staging-eu", "analyze",
                                          {"health check failed 4 times in a row", "503"}));
  // The third failure in a row was reported and tolerated; the fourth ended the step.
  const json ev = events(id);
  const auto failed = stepEvents(ev, "stage.failed", "staging-eu", "analyze");
  ASSERT_EQ(failed.size(), 1u) << ev.dump(1);
  int third = -1;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].value("type", "") == "stage.output" && ev[i].value("cluster", "") == "staging-eu" &&
        contains(ev[i].value("message", ""), "3 in a row")) {
      third = static_cast<int>(i);
      break;
    }
  }
  ASSERT_GE(third, 0) << "no output of the tolerated third failure: " << ev.dump(1);
  EXPECT_LT(ev[third]["seq"].get<long long>(), failed[0]["seq"].get<long long>());
  EXPECT_EQ(ev[third].value("step", ""), "analyze") << ev[third].dump();

  // /health is not /: traffic never failed, and after the rollback only 1.0.0 answered.
  const auto back = timesOf(eventsOf(ev, "rollback.succeeded", "staging-eu"));
  ASSERT_EQ(back.size(), 1u) << ev.dump(1);
  for (const auto& c : kTwoWaves.clusters) {
    Tally t = tally(answers_[c.cluster]);
    EXPECT_EQ(t.failed, 0u) << c.cluster << ": " << t.describe();
  }
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_GT(staging.of("2.0.0"), 0u) << staging.describe();
  Tally after = tallyBetween(answers_["staging-eu"], back[0], SystemTime::max());
  EXPECT_EQ(after.of("1.0.0"), after.total) << after.describe();
  Tally prod = tally(answers_["prod-eu-1"]);
  EXPECT_EQ(prod.of("1.0.0"), prod.total) << prod.describe();
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-eu-1").empty());
  expectBackOnBaseline({"staging-eu"});
}

// ---- Blue-green ------------------------------------------------------------------------------

TEST_F(CanaryTest, BlueGreenSwitch) {
  const std::string id =
      startRollout(kTwoWaves, "blue-green.yaml",
                   {.version = "2.0.0", .strategy = "{type: blue_green}", .bake = "3s"});
  ASSERT_FALSE(id.empty());

  // During the bake the new set has all the traffic and the old set still runs, out of
  // traffic, so that switching back would be instant.
  ASSERT_TRUE(waitUntil("staging-eu to bake", [&] {
    const std::string state = clusterState(id, "staging-eu");
    return state == "baking" || state == "succeeded" || isFinalState(stateOf(id));
  }));
  ASSERT_EQ(clusterState(id, "staging-eu"), "baking") << "the bake was over before it was seen";
  {
    json record = serviceRecord("staging-eu");
    ASSERT_TRUE(record.is_object()) << serviceRecordText("staging-eu");
    EXPECT_EQ(record["candidate"].value("version", ""), "2.0.0") << record.dump(2);
    EXPECT_EQ(record["candidate"].value("share", -1), 100) << record.dump(2);
    EXPECT_EQ(record["stable"].value("version", ""), "1.0.0") << record.dump(2);
    EXPECT_EQ(record["stable"].value("share", -1), 0) << record.dump(2);
    for (const auto& r : baseline_replicas_["staging-eu"]) {
      EXPECT_TRUE(replicaAlive(r)) << "1.0.0 replica pid " << r.pid << " stopped before the bake"
                                   << " ended";
    }
    expectServing("staging-eu", portsOf(replicasOf(record["candidate"])));
  }

  finishRollout(id);
  expectSucceeded(id);
  const json ev = events(id);
  for (const auto& c : kTwoWaves.clusters) {
    SCOPED_TRACE(c.cluster);
    const std::vector<Answer>& all = answers_[c.cluster];
    Tally whole = tally(all);
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    // One switch, all at once: old only before it, new only after it.
    const auto shift_started = timesOf(stepEvents(ev, "stage.started", c.cluster, "shift"));
    const auto shift_done = timesOf(stepEvents(ev, "stage.succeeded", c.cluster, "shift"));
    ASSERT_EQ(shift_started.size(), 1u) << ev.dump(1);
    ASSERT_EQ(shift_done.size(), 1u) << ev.dump(1);
    EXPECT_EQ(stepEvents(ev, "stage.succeeded", c.cluster, "bake").size(), 1u) << ev.dump(1);
    Tally before = tallyBetween(all, SystemTime::min(), shift_started[0]);
    Tally after = tallyBetween(all, shift_done[0], SystemTime::max());
    EXPECT_GE(before.total, kMinAnswersInPhase) << before.describe();
    EXPECT_GE(after.total, kMinAnswersInPhase) << after.describe();
    EXPECT_EQ(before.of("1.0.0"), before.total) << "before the switch: " << before.describe();
    EXPECT_EQ(after.of("2.0.0"), after.total) << "after the switch: " << after.describe();
    expectOnNewVersion(c.cluster, "2.0.0");
  }
  expectOnlyDemoVersion("2.0.0");
}

// Rolling through the coordinator: one `roll` step per cluster replaces the replicas a few
// at a time; traffic never fails and only the new version is left.
TEST_F(CanaryTest, RollingUpdate) {
  const std::string id = rollOut(
      kTwoWaves, "rolling.yaml",
      {.version = "2.0.0", .strategy = "{type: rolling, max_unavailable: 1, max_surge: 1}"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(wait_.exit_code, 0) << wait_.out << wait_.err << deployment(id).dump(2);

  const json ev = events(id);
  for (const auto& c : kTwoWaves.clusters) {
    SCOPED_TRACE(c.cluster);
    Tally whole = tally(answers_[c.cluster]);
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    EXPECT_EQ(stepEvents(ev, "stage.started", c.cluster, "roll").size(), 1u) << ev.dump(1);
    EXPECT_TRUE(stepEvents(ev, "stage.started", c.cluster, "shift").empty()) << ev.dump(1);
    expectOnNewVersion(c.cluster, "2.0.0");
  }
  expectOnlyDemoVersion("2.0.0");
}

// A trigger during the bake switches back to the old set, which never stopped: no request
// fails on the way there or back.
TEST_F(CanaryTest, BlueGreenSwitchesBackOnBakeTrigger) {
  const std::string id = rollOut(kTwoWaves, "blue-green-bad.yaml",
                                 {.version = "2.0.0",
                                  .command_extra = onlyFor("2.0.0", "--health-fail-after 3s"),
                                  .strategy = "{type: blue_green}",
                                  .bake = "8s"});
  ASSERT_FALSE(id.empty());
  expectRolledBack(id);
  ASSERT_NO_FATAL_FAILURE(expectFailureAt(id, "staging-eu", "bake", {"4 times in a row"}));

  const json ev = events(id);
  const auto switched = timesOf(stepEvents(ev, "stage.succeeded", "staging-eu", "shift"));
  const auto back = timesOf(eventsOf(ev, "rollback.succeeded", "staging-eu"));
  ASSERT_EQ(switched.size(), 1u) << ev.dump(1);
  ASSERT_EQ(back.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-eu-1").empty());

  const std::vector<Answer>& staging = answers_["staging-eu"];
  Tally whole = tally(staging);
  EXPECT_EQ(whole.failed, 0u) << whole.describe();
  Tally on_new = tallyBetween(staging, switched[0], back[0]);
  EXPECT_GT(on_new.of("2.0.0"), 0u) << "after the switch: " << on_new.describe();
  Tally after = tallyBetween(staging, back[0], SystemTime::max());
  EXPECT_GE(after.total, 1u);
  EXPECT_EQ(after.of("1.0.0"), after.total) << "after switching back: " << after.describe();
  Tally prod = tally(answers_["prod-eu-1"]);
  EXPECT_EQ(prod.failed, 0u) << prod.describe();
  EXPECT_EQ(prod.of("1.0.0"), prod.total) << prod.describe();

  expectBackOnBaseline({"staging-eu"});
}

// ---- Analysis through a real Prometheus server: the same decisions as the direct scrape -----

class PrometheusCanaryTest : public BadCanaryTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(BadCanaryTest::SetUp());
    prometheus_ = Prometheus::start(dir(), ports_, kPortBlock);
    ASSERT_NE(prometheus_, nullptr);
  }
  void TearDown() override {
    if (prometheus_) prometheus_->stop();
    BadCanaryTest::TearDown();
  }
  std::string metrics(const std::string& latency_ratio = "2.0") const {
    return "{source: prometheus, prometheus: \"" + prometheus_->url() +
           "\", error_rate_increase: 0.5, latency_p95_ratio: " + latency_ratio +
           ", min_requests: 20}";
  }
  // Prometheus has scraped the baseline replicas of every cluster: it sees what the agents see.
  void beforeRollout() override {
    std::string instances;
    for (const auto& [cluster, replicas] : baseline_replicas_) {
      for (const auto& r : replicas) {
        instances +=
            (instances.empty() ? "" : "|") + std::string("127.0.0.1:") + std::to_string(r.port);
      }
    }
    ASSERT_TRUE(waitUntil("Prometheus scraping the baseline replicas",
                          [&] { return prometheus_->scrapes(instances); }));
  }
  std::unique_ptr<Prometheus> prometheus_;
};

TEST_F(PrometheusCanaryTest, BadCanaryRolledBack) {
  const std::string id = rollOutBadVersion(onlyFor("2.0.0", "--error-rate 0.2"), metrics());
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"error rate"}));
  std::cerr << "[canary] through Prometheus: " << deployment(id)["failure"].value("message", "")
            << "\n";
}

TEST_F(PrometheusCanaryTest, SlowVersionRolledBackByLatency) {
  const std::string id = rollOutBadVersion(onlyFor("2.0.0", "--latency-ms 60"), metrics());
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"latency"}));
  const std::string message = deployment(id)["failure"].value("message", "");
  EXPECT_FALSE(contains(message, "error rate 0.")) << "rolled back for errors: " << message;
}

TEST_F(PrometheusCanaryTest, GoodCanaryPasses) {
  const std::string id =
      rollOut(kTwoWaves, "good.yaml",
              {.version = "2.0.0", .strategy = kCanarySteps, .metrics = metrics("3.0")});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(wait_.exit_code, 0) << wait_.out << wait_.err << deployment(id).dump(2);
  const json ev = events(id);
  for (const auto& c : kTwoWaves.clusters) {
    SCOPED_TRACE(c.cluster);
    ASSERT_NO_FATAL_FAILURE(expectAnalysesPassed(ev, c.cluster));
    Tally whole = tally(answers_[c.cluster]);
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    expectOnlyVersion(c.cluster, "2.0.0");
  }
}

// ---- Alerts: an event and a JSON POST to the plan's webhook, retried ------------------------

// A webhook receiver on 127.0.0.1: answers 503 to the first POST (so the coordinator must
// retry), 200 to the others, and keeps every body.
class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.server().Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      bodies_.push_back(req.body);
      content_types_.push_back(req.get_header_value("Content-Type"));
      res.status = bodies_.size() == 1 ? 503 : 200;
    });
    server_.start();
  }
  std::string url() const { return server_.url("/hook"); }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  std::vector<std::string> contentTypes() {
    std::lock_guard lock(mu_);
    return content_types_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
  LocalHttpServer server_;  // last: stopped (its handler done) before the bodies go
};

TEST_F(BadCanaryTest, AlertReachesTheWebhook) {
  WebhookReceiver receiver;
  const std::string id = rollOutBadVersion(
      onlyFor("2.0.0", "--error-rate 0.2"), kStrictMetrics,
      "{error_rate: 0.05, webhook: \"" + receiver.url() + "\", webhook_timeout: 2s}");
  ASSERT_FALSE(id.empty());
  // The alert is in the deployment's log, with the figures.
  const json ev = events(id);
  const auto alerts = eventsOf(ev, "alert", "staging-eu");
  ASSERT_GE(alerts.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(contains(alerts[0].value("message", ""), "error_rate: 2.0.0: error rate"))
      << alerts[0].dump();
  EXPECT_TRUE(contains(alerts[0].value("message", ""), "alert threshold")) << alerts[0].dump();

  // The first POST was refused with 503; the retry got through with the same body.
  ASSERT_TRUE(waitUntil("the webhook retried", [&] { return receiver.bodies().size() >= 2; }))
      << receiver.bodies().size() << " POST(s)";
  const auto bodies = receiver.bodies();
  EXPECT_EQ(bodies[0], bodies[1]);
  EXPECT_EQ(receiver.contentTypes()[0], "application/json");
  json body = json::parse(bodies[1], nullptr, false);
  ASSERT_TRUE(body.is_object()) << bodies[1];
  EXPECT_EQ(body.value("rule", ""), "error_rate") << body.dump(2);
  EXPECT_EQ(body.value("cluster", ""), "staging-eu") << body.dump(2);
  EXPECT_EQ(body.value("deployment", ""), id) << body.dump(2);
  EXPECT_EQ(body.value("version", ""), "2.0.0") << body.dump(2);
  EXPECT_EQ(body.value("service", ""), "checkout") << body.dump(2);
  EXPECT_GT(body.value("value", 0.0), 0.05) << body.dump(2);
  EXPECT_DOUBLE_EQ(body.value("threshold", 0.0), 0.05) << body.dump(2);
  // Slack-compatible: a `text` a person can read.
  EXPECT_TRUE(contains(body.value("text", ""), "checkout 2.0.0 on staging-eu")) << body.dump(2);
  EXPECT_TRUE(contains(body.value("text", ""), "error rate")) << body.dump(2);
  // And the coordinator counted it.
  const std::string metrics = get("/metrics").body;
  EXPECT_TRUE(contains(metrics, "flotilla_alerts_total{rule=\"error_rate\"}")) << metrics;
  EXPECT_TRUE(contains(metrics, "flotilla_webhook_posts_total{result=\"delivered\"} 1")) << metrics;
}

}  // namespace
}  // namespace flotilla::integration
