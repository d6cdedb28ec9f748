// Tests for agent/script/watch.cpp: the script driver's analyze and bake, on the test's clock
// (tests/support/fake_step.hpp), with health probes answering as each test says and a real
// HTTP server standing in for Prometheus' query API (one figure per query, chosen by the
// version the query names). The whole path with a real Prometheus, real HAProxy and real
// agents is integration/script_canary_test.cpp.
#include "agent/script/watch.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/script/watch_command.hpp"
#include "tests/support/fake_step.hpp"
#include "tests/support/http_server.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;

// Per version: request rate (/s), error share, p95 seconds.
struct Figures {
  double rate = 10;
  double errors = 0;
  double p95 = 0.010;
};

// A Prometheus query API that answers the plan's three queries below from `figures`.
class FakePrometheus {
 public:
  FakePrometheus() {
    http_.server().Get("/api/v1/query", [this](const httplib::Request& req,
                                               httplib::Response& res) {
      const std::string q = req.get_param_value("query");
      std::lock_guard lock(mu_);
      queries_.push_back(q);
      for (const auto& [version, f] : figures) {
        if (q.find("version=\"" + version + "\"") == std::string::npos) continue;
        double value = q.rfind("rate:", 0) == 0     ? f.rate
                       : q.rfind("errors:", 0) == 0 ? f.errors
                                                    : f.p95;
        res.set_content(
            R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,")" +
                std::to_string(value) + R"("]}]}})",
            "application/json");
        return;
      }
      res.set_content(R"({"status":"success","data":{"resultType":"vector","result":[]}})",
                      "application/json");
    });
    http_.start();
  }
  std::string url() const { return http_.url(); }
  std::vector<std::string> queries() {
    std::lock_guard lock(mu_);
    return queries_;
  }
  std::map<std::string, Figures> figures;  // set before the step runs

 private:
  std::mutex mu_;
  std::vector<std::string> queries_;
  support::LocalHttpServer http_;
};

using Millis = std::chrono::milliseconds;
using common::Status;

class ScriptWatchTest : public ::testing::Test {
 protected:
  // A watch of 2.0.0 against 1.0.0 on cluster eu-1, 30 s windows, checks every 5 s.
  Spec spec(bool with_metrics = true) {
    Spec s;
    s.service = "checkout";
    s.version = "2.0.0";
    s.previous_version = "1.0.0";
    s.cluster = "eu-1";
    s.deployment = "d-1";
    s.duration = 30s;
    s.health.interval = 5s;
    s.health.timeout = 1s;
    s.health.failure_threshold = 3;
    s.health.url = "http://{cluster}.svc.example/{environment}/health?v={version}";
    s.env = {{"FLOTILLA_ENVIRONMENT", "staging"}};
    if (with_metrics) {
      MetricsSpec m;
      m.prometheus = PrometheusSource{
          prometheus_.url(),
          "rate:sum(rate(req{version=\"{version}\",cluster=\"{cluster}\"}[{window}]))",
          "errors:x{version=\"{version}\"}", "p95:y{version=\"{version}\"}"};
      s.metrics = m;
    }
    s.alerts = AlertConfig{};
    return s;
  }

  // Runs the step with health checks answering `healthy(n)` for the n-th check (1-based).
  Status run(
      Step step, const Spec& s, std::string* message,
      std::function<bool(int)> healthy = [](int) { return true; }) {
    ScriptWatch watch(ctx_, s, alert_sink_, figures_sink_,
                      [this, healthy](const std::string& url, Millis) {
                        urls_.push_back(url);
                        const bool ok = healthy(static_cast<int>(urls_.size()));
                        return Probe{ok, true, ok ? "" : "HTTP 503"};
                      });
    return step == Step::BAKE ? watch.bake(message) : watch.analyze(message);
  }

  bool logged(const std::string& text) const {
    for (const auto& l : ctx_.lines) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

  FakePrometheus prometheus_;
  support::FakeStep ctx_;
  std::vector<std::string> urls_;
  std::vector<AlertReport> alerts_;
  AlertSink alert_sink_ = [this](const AlertReport& a) { alerts_.push_back(a); };
  std::vector<FiguresReport> figures_;
  FiguresSink figures_sink_ = [this](const FiguresReport& f) { figures_.push_back(f); };
};

TEST_F(ScriptWatchTest, HealthUrlFillsClusterVersionAndEnvironment) {
  EXPECT_EQ(healthUrl(spec()), "http://eu-1.svc.example/staging/health?v=2.0.0");
  Spec none = spec();
  none.health.url.clear();
  EXPECT_EQ(healthUrl(none), "");
}

TEST_F(ScriptWatchTest, AnalysisPassesWhenTheNewVersionMatchesTheStableOne) {
  prometheus_.figures = {{"2.0.0", {10, 0.0, 0.010}}, {"1.0.0", {10, 0.0, 0.011}}};
  std::string message;
  Status s = run(Step::ANALYZE, spec(), &message);
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_NE(message.find("analysis passed over 30.0s"), std::string::npos) << message;
  EXPECT_NE(message.find("6 health checks passed"), std::string::npos) << message;
  EXPECT_EQ(urls_.front(), "http://eu-1.svc.example/staging/health?v=2.0.0");
  // Each version measured over the window, with the cluster filled in.
  bool saw_new = false;
  bool saw_stable = false;
  for (const auto& q : prometheus_.queries()) {
    saw_new = saw_new || q == "rate:sum(rate(req{version=\"2.0.0\",cluster=\"eu-1\"}[30000ms]))";
    saw_stable =
        saw_stable || q == "rate:sum(rate(req{version=\"1.0.0\",cluster=\"eu-1\"}[30000ms]))";
  }
  EXPECT_TRUE(saw_new && saw_stable);
  EXPECT_TRUE(alerts_.empty());
  // The window's figures for the coordinator, with the limits, the verdict and the health streak.
  ASSERT_EQ(figures_.size(), 1u);
  const FiguresReport& f = figures_[0];
  EXPECT_FALSE(f.bake);
  EXPECT_EQ(f.window, 1u);
  EXPECT_EQ(f.window_ms, 30000u);
  EXPECT_EQ(f.candidate.version, "2.0.0");
  EXPECT_EQ(f.candidate.requests, 300u);
  ASSERT_TRUE(f.stable.has_value());
  EXPECT_EQ(f.stable->version, "1.0.0");
  EXPECT_EQ(f.verdict, common::WindowVerdict::kPass);
  ASSERT_TRUE(f.latency_p95_limit.has_value());
  EXPECT_NEAR(*f.latency_p95_limit, 0.022, 1e-9);
  EXPECT_EQ(f.health_checks, 6u);
  EXPECT_EQ(f.health_failing, 0u);
  EXPECT_EQ(f.health_threshold, 3u);
}

TEST_F(ScriptWatchTest, TwentyPercentErrorsFailTheAnalysisAndRaiseTheDefaultAlert) {
  prometheus_.figures = {{"2.0.0", {10, 0.20, 0.010}}, {"1.0.0", {10, 0.0, 0.010}}};
  std::string message;
  Status s = run(Step::ANALYZE, spec(), &message);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("analysis failed: error rate 0.200"), std::string::npos)
      << s.message();
  ASSERT_EQ(alerts_.size(), 1u);
  EXPECT_EQ(alerts_[0].rule, "error_rate");
  EXPECT_EQ(alerts_[0].version, "2.0.0");
  EXPECT_DOUBLE_EQ(alerts_[0].threshold, 0.05);
}

TEST_F(ScriptWatchTest, HealthFailsOnTheFourthFailureInARowNotTheThird) {
  std::string message;
  Spec s = spec(false);
  // Checks 1-2 pass, then every one fails: the 3rd, 4th and 5th fail, the 6th crosses.
  // Three failures in a row are tolerated; the fourth fails the step.
  Status st = run(Step::ANALYZE, s, &message, [](int n) { return n <= 2; });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(urls_.size(), 6u);
  EXPECT_NE(st.message().find("health check failed 4 times in a row"), std::string::npos)
      << st.message();
  EXPECT_TRUE(logged("3 in a row"));
}

TEST_F(ScriptWatchTest, AFailureRunBrokenByASuccessStartsAgain) {
  std::string message;
  // fail, fail, fail, ok, fail, fail, fail, ok: never four in a row.
  Status st = run(Step::ANALYZE, spec(false), &message, [](int n) { return n % 4 == 0; });
  EXPECT_TRUE(st.ok()) << st.toString();
}

TEST_F(ScriptWatchTest, TooLittleTrafficIsWatchedAgainThenGivesUp) {
  prometheus_.figures = {{"2.0.0", {0.1, 0.0, 0.010}}, {"1.0.0", {0.1, 0.0, 0.010}}};
  std::string message;
  Status s = run(Step::ANALYZE, spec(), &message);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("analysis still inconclusive after 120.0s"), std::string::npos)
      << s.message();
  EXPECT_TRUE(logged("watching another 30.0s"));

  Spec strict = spec();
  strict.metrics->wait_when_inconclusive = false;
  s = run(Step::ANALYZE, strict, &message);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("analysis inconclusive:"), std::string::npos) << s.message();
}

TEST_F(ScriptWatchTest, NoStableVersionMeansHealthChecksOnly) {
  Spec s = spec();
  s.previous_version.clear();
  std::string message;
  Status st = run(Step::ANALYZE, s, &message);
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_TRUE(logged("no stable version to compare 2.0.0 with"));
  EXPECT_TRUE(prometheus_.queries().empty());
}

TEST_F(ScriptWatchTest, PrometheusUnreachableIsInconclusiveNeverAPass) {
  Spec s = spec();
  s.metrics->prometheus->url = "http://127.0.0.1:1";
  s.metrics->wait_when_inconclusive = false;
  std::string message;
  Status st = run(Step::ANALYZE, s, &message);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("inconclusive"), std::string::npos) << st.message();
}

TEST_F(ScriptWatchTest, BakeFailsATwentyTimesSlowerVersionAgainstTheOldOne) {
  prometheus_.figures = {{"2.0.0", {10, 0.0, 0.0975}}, {"1.0.0", {10, 0.0, 0.0048}}};
  Spec s = spec();
  s.duration = 60s;
  std::string message;
  Status st = run(Step::BAKE, s, &message);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("bake failed against 1.0.0"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("p95"), std::string::npos) << st.message();
  EXPECT_TRUE(logged("bake baseline 1.0.0"));
  ASSERT_FALSE(alerts_.empty());
  EXPECT_EQ(alerts_[0].rule, "latency_p95");
  ASSERT_EQ(figures_.size(), 1u) << "the first slice already fails the whole bake";
  EXPECT_TRUE(figures_[0].bake);
  EXPECT_EQ(figures_[0].verdict, common::WindowVerdict::kFail);
}

TEST_F(ScriptWatchTest, BakePassesAndChecksHealthTwiceAsOften) {
  prometheus_.figures = {{"2.0.0", {10, 0.0, 0.010}}, {"1.0.0", {10, 0.0, 0.010}}};
  std::string message;
  Status st = run(Step::BAKE, spec(), &message);
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_NE(message.find("passed the analysis against 1.0.0"), std::string::npos) << message;
  EXPECT_GE(urls_.size(), 12u) << "every 2.5 s over 30 s";
}

TEST_F(ScriptWatchTest, WithoutUrlOrMetricsTheStepIsAPause) {
  Spec s = spec(false);
  s.health.url.clear();
  std::string message;
  Status st = run(Step::ANALYZE, s, &message);
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_TRUE(urls_.empty());
  EXPECT_EQ(ctx_.slept, std::chrono::steady_clock::duration(30s));
}

TEST_F(ScriptWatchTest, ACancelEndsTheWatch) {
  ctx_.cancelled = true;
  std::string message;
  Status st = run(Step::ANALYZE, spec(false), &message);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(ctx_.aborted);
}

// A watch tier: health checks at the spec's interval (the tier's), not twice as often, and the
// plan's steps.watch at each of them; its failures are counted apart from the URL's.
TEST_F(ScriptWatchTest, WatchChecksAtTheTiersIntervalAndRunsTheCommandEachTime) {
  Spec s = spec(false);
  s.alerts.reset();
  int runs = 0;
  ScriptWatch watch(
      ctx_, s, alert_sink_, figures_sink_,
      [this](const std::string& url, Millis) {
        urls_.push_back(url);
        return Probe{true, true, ""};
      },
      [&runs](Millis timeout) {
        EXPECT_EQ(timeout, 5s);
        ++runs;
        return Probe{runs % 2 == 0, true, runs % 2 == 0 ? "" : "exit code 1"};
      });
  std::string message;
  Status st = watch.watch(&message);
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(urls_.size(), 6u) << "every 5 s over 30 s";
  EXPECT_EQ(runs, 6);
  EXPECT_NE(message.find("watched 2.0.0 for 30.0s"), std::string::npos) << message;
  EXPECT_NE(message.find("steps.watch ran 6 times"), std::string::npos) << message;
  EXPECT_TRUE(logged("steps.watch failed (2.0.0, 1 in a row): exit code 1"));
}

TEST_F(ScriptWatchTest, WatchFailsOnTheCommandsFourthFailureInARow) {
  Spec s = spec(false);
  s.health.url.clear();
  int runs = 0;
  ScriptWatch watch(ctx_, s, alert_sink_, figures_sink_, {}, [&runs](Millis) {
    ++runs;
    return Probe{runs < 3, true, runs < 3 ? "" : "exit code 1: orders failing"};
  });
  std::string message;
  Status st = watch.watch(&message);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(runs, 6);
  EXPECT_NE(st.message().find("steps.watch failed 4 times in a row: exit code 1: orders failing"),
            std::string::npos)
      << st.message();
}

// The real command: its exit, its deadline, its output bounded in the log.
TEST(WatchCommandTest, ExitDeadlineAndOutput) {
  std::atomic<bool> cancel{false};
  std::vector<std::string> lines;
  LineSink log = [&lines](const std::string& l) { lines.push_back(l); };
  ChildSpec ok;
  ok.command = "echo \"tier $FLOTILLA_WATCH_TIER\"";
  ok.env = {{"FLOTILLA_WATCH_TIER", "intense"}};
  Probe p = runWatchCommand(ok, {}, 5s, cancel, log);
  EXPECT_TRUE(p.ok) << p.detail;
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "steps.watch: tier intense");

  ChildSpec fails;
  fails.command = "echo 'orders: 12% errors'; exit 3";
  p = runWatchCommand(fails, {}, 5s, cancel, log);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.detail, "steps.watch exit code 3: orders: 12% errors");

  ChildSpec slow;
  slow.command = "sleep 30";
  const auto started = std::chrono::steady_clock::now();
  p = runWatchCommand(slow, {}, 200ms, cancel, log);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.detail.find("timed out after 200ms"), std::string::npos) << p.detail;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);

  lines.clear();
  ChildSpec chatty;
  chatty.command = "for i in $(seq 100); do echo line $i; done";
  p = runWatchCommand(chatty, {}, 5s, cancel, log);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(lines.size(), static_cast<size_t>(kMaxWatchCommandLines) + 1);
  EXPECT_EQ(lines.back(), "steps.watch: 80 more output line(s) not logged");
}

}  // namespace
}  // namespace flotilla::agent
