// The dashboard in a real browser (issue 14): each test starts a real coordinator and agents
// (and, for the canaries, a real HAProxy per cluster with traffic through it), runs one scenario
// of integration/browser/ in Debian's headless chromium beside them (tests/support/browser.hpp),
// and checks both what the page showed and what the API says.
#include "tests/support/browser.hpp"

#include <cmath>
#include <filesystem>
#include <regex>
#include <thread>

#include "tests/support/plans.hpp"
#include "tests/support/service_fleet.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// A staging wave, then a production wave that waits for an approval.
const std::string kGatedPlan =
    ScriptPlan{.version = "2.0.0",
               .verify = "",
               .waves = {waveOf("staging", {"staging-eu"}),
                         waveOf("production", {"prod-eu-1"}, {"approval: required"})}}
        .yaml();
// Spelt out: kUsualAgents (another file's static) may not be initialised yet at this point.
const std::vector<FleetAgent> kTwoAgents = {
    {"staging-eu", {{"environment", "staging"}}},
    {"prod-eu-1", {{"environment", "production"}, {"region", "eu"}}}};

// The canaries: 10% -> 50% -> 100%, 2 s apart (as canary_test.cpp).
const std::string kCanarySteps = canarySteps("2s");
constexpr char kStrictMetrics[] =
    "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, min_requests: 20}";
constexpr char kLenientMetrics[] =
    "{error_rate_increase: 0.5, latency_p95_ratio: 3.0, min_requests: 20}";
// One cluster in one wave: the canaries that only need one.
const ServiceShape kOneCluster = {{{"staging-eu", {{"environment", "staging"}}}},
                                  {waveSelecting("staging", "environment: staging")}};

// The scenario passed: its exit code, with its output and report when not.
void expectPassed(const BrowserResult& result) {
  EXPECT_EQ(result.exit_code, 0) << result.output << "\nreport: " << result.report.dump(2);
  EXPECT_TRUE(result.report.is_object() && result.report.value("ok", false))
      << result.output << "\nreport: " << result.report.dump(2);
}

std::vector<long long> seqsOf(const json& events) {
  std::vector<long long> seqs;
  for (const auto& e : events) seqs.push_back(e["seq"].get<long long>());
  return seqs;
}

class BrowserTest : public FleetTest {
 protected:
  std::unique_ptr<BrowserScenario> scenario(const std::string& name, const std::string& token,
                                            const std::map<std::string, std::string>& env = {}) {
    return BrowserScenario::start(name, serverUrl(), token, dir() + "/browser-" + name, env);
  }

  // The coordinator and two agents (staging-eu, prod-eu-1), and kGatedPlan waiting for its
  // production wave's approval: the id ("" after a failure, recorded).
  std::string gatedDeployment() {
    EXPECT_NO_FATAL_FAILURE(startCoordinator());
    EXPECT_NO_FATAL_FAILURE(startAgents(kTwoAgents));
    if (HasFatalFailure()) return "";
    const std::string id = submitPlan("gated.yaml", kGatedPlan);
    if (id.empty() || !waitForState(id, "awaiting_approval")) return "";
    return id;
  }

  // The audit records whose action is `action` and whose actor is `actor`.
  json auditOf(const std::string& actor, const std::string& action) {
    HttpResponse r = get("/api/v1/audit?limit=1000");
    EXPECT_EQ(r.status, 200) << r.body;
    json found = json::array();
    const json all = json::parse(r.body, nullptr, false);
    if (!all.is_object()) return found;
    for (const auto& rec : all["records"]) {
      if (rec.value("actor", "") == actor && rec.value("action", "") == action) {
        found.push_back(rec);
      }
    }
    return found;
  }
};

// (a) A viewer: no action buttons; an approve forged from the page's own session is refused with
// and without the CSRF header; logging out ends the session on the server.
TEST_F(BrowserTest, ViewerSeesNoActionsAndCannotForgeAnApproval) {
  const std::string id = gatedDeployment();
  ASSERT_FALSE(id.empty());
  const std::string viewer = createToken("vic", "viewer");
  auto browser =
      scenario("viewer", viewer, {{"FLOTILLA_DEPLOYMENT", id}, {"FLOTILLA_WAVE", "production"}});
  ASSERT_NE(browser, nullptr);
  const BrowserResult result = browser->finish(90s);
  expectPassed(result);
  const json& report = result.report;
  ASSERT_TRUE(report.is_object()) << result.output;
  EXPECT_EQ(report.value("whoami", ""), "vic (viewer)");

  // The API's side: nothing was approved, no approval of vic's went through.
  const json detail = deployment(id);
  EXPECT_EQ(detail["state"], "awaiting_approval") << detail.dump(2);
  EXPECT_TRUE(detail["waves"][1]["approvals"].empty()) << detail["waves"][1].dump(2);
  EXPECT_EQ(findEvent(events(id), "wave.approved"), -1);
  // Both forged approvals are in the audit, refused; so is the logout.
  const json forged = auditOf("vic", "POST /api/v1/deployments/{id}/approve");
  EXPECT_EQ(forged.size(), 2u) << get("/api/v1/audit?limit=1000").body;
  for (const auto& rec : forged) EXPECT_EQ(rec.value("outcome", ""), "403") << rec.dump();
  const json logout = auditOf("vic", "DELETE /api/v1/session");
  ASSERT_EQ(logout.size(), 1u) << get("/api/v1/audit?limit=1000").body;
  EXPECT_EQ(logout[0]["outcome"], "ok") << logout.dump();
  // The cookie the browser held is dead on the server after the logout.
  const std::string cookie = report.value("cookie", "");
  ASSERT_FALSE(cookie.empty()) << report.dump(2);
  HttpResponse session =
      request("GET", "/api/v1/session", "", "", {{"Cookie", "flotilla_session=" + cookie}});
  EXPECT_EQ(session.status, 401) << session.body;
}

// (d) An approver approves the waiting production wave with the button; the wave starts, and the
// API and the audit name the approver. The same session's approve without the CSRF header is
// refused first.
TEST_F(BrowserTest, ApproverApprovesTheWaitingWaveWithTheButton) {
  const std::string id = gatedDeployment();
  ASSERT_FALSE(id.empty());
  const std::string approver = createToken("alice", "approver");
  auto browser =
      scenario("approve", approver, {{"FLOTILLA_DEPLOYMENT", id}, {"FLOTILLA_WAVE", "production"}});
  ASSERT_NE(browser, nullptr);
  const BrowserResult result = browser->finish(90s);
  expectPassed(result);
  EXPECT_EQ(result.report.value("button", ""), "Approve wave production");

  ASSERT_TRUE(waitForState(id, "succeeded"));
  const json detail = deployment(id);
  const json& wave = detail["waves"][1];
  ASSERT_EQ(wave["approvals"].size(), 1u) << wave.dump(2);
  EXPECT_EQ(wave["approvals"][0]["by"], "alice") << wave.dump(2);
  EXPECT_EQ(wave["approvals"][0]["role"], "approver") << wave.dump(2);
  const json ev = events(id);
  const int waiting = findEvent(ev, "wave.awaiting_approval", "production");
  const int approved = findEvent(ev, "wave.approved", "production");
  EXPECT_GT(approved, waiting);
  EXPECT_GT(findEvent(ev, "wave.started", "production"), approved);
  // The audit: the approve without the CSRF header refused, then the one from the dialog.
  const json audit = auditOf("alice", "POST /api/v1/deployments/{id}/approve");
  ASSERT_EQ(audit.size(), 2u) << get("/api/v1/audit?limit=1000").body;
  EXPECT_EQ(audit[0]["outcome"], "403") << audit.dump(2);
  EXPECT_EQ(audit[1]["outcome"], "ok") << audit.dump(2);
  EXPECT_EQ(audit[1]["target"], id) << audit.dump(2);
}

// (e) The coordinator is killed (SIGKILL) and restarted mid-rollout while the page follows it:
// the page reconnects and has seen exactly the API's events, none twice.
TEST_F(BrowserTest, PageCatchesUpAfterTheCoordinatorIsKilledAndRestarted) {
  // apply takes 3 s and marks its start, so the coordinator dies mid-step.
  const std::string plan =
      ScriptPlan{.version = "3.0.0",
                 .apply = logStep("apply") +
                          " && touch @DIR@/$FLOTILLA_CLUSTER.apply-started && sleep 3 && " +
                          kRecordVersion,
                 .waves = {waveOf("first", {"staging-eu"}), waveOf("second", {"prod-eu-1"})}}
          .yaml();
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  ASSERT_NO_FATAL_FAILURE(startAgents(kTwoAgents));
  auto browser = scenario("restart", createToken("watcher", "viewer"));
  ASSERT_NE(browser, nullptr);
  ASSERT_TRUE(browser->waitForMark("ready"));
  const std::string id = submitPlan("slow.yaml", plan);
  ASSERT_FALSE(id.empty());
  browser->tell("deployment-id", id);
  ASSERT_TRUE(browser->waitForMark("watching"));
  ASSERT_TRUE(waitUntil("staging-eu's apply to run",
                        [&] { return fileExists(dir() + "/staging-eu.apply-started"); }));
  const size_t before = events(id).size();
  ASSERT_EQ(stateOf(id), "running") << "too late to kill the coordinator mid-rollout";

  ASSERT_NO_FATAL_FAILURE(killCoordinator());
  // Down long enough for the page's stream to notice.
  std::this_thread::sleep_for(1500ms);
  ASSERT_NO_FATAL_FAILURE(restartCoordinator());
  browser->tell("restarted", "1");
  const BrowserResult result = browser->finish(120s);
  expectPassed(result);

  ASSERT_TRUE(waitForState(id, "succeeded"));
  const std::vector<long long> api = seqsOf(events(id));
  EXPECT_GT(api.size(), before) << "no event came after the restart";
  const json& report = result.report;
  ASSERT_TRUE(report.is_object()) << result.output;
  EXPECT_EQ(report.value("seen_seqs", std::vector<long long>{}), api) << report.dump();
  EXPECT_LT(report.value("seen_before_kill", std::vector<long long>{}).size(), api.size());
  std::cerr << "[browser] the page saw " << api.size() << " events, "
            << report.value("seen_before_kill", json::array()).size()
            << " of them before the kill\n";
}

// (f) axe-core finds no serious or critical violation on any page: login, overview, deployment
// (with the approve button showing), agents, release (a passed and a failed check) and log.
TEST_F(BrowserTest, NoSeriousAccessibilityViolationOnAnyPage) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  ASSERT_NO_FATAL_FAILURE(startAgents(kTwoAgents));
  const std::string done = submitPlan(
      "done.yaml",
      ScriptPlan{.version = "1.0.0",
                 .waves = {waveOf("staging", {"staging-eu"}), waveOf("production", {"prod-eu-1"})}}
          .yaml());
  ASSERT_FALSE(done.empty());
  ASSERT_TRUE(waitForState(done, "succeeded"));
  for (const auto& [check, outcome] : std::vector<std::pair<std::string, std::string>>{
           {"tests", "--passed"}, {"security_scan", "--failed"}}) {
    CommandResult r = cli({"checks", "report", "web", "1.0.0", check, outcome});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  const std::string waiting = submitPlan("gated.yaml", kGatedPlan);
  ASSERT_FALSE(waiting.empty());
  ASSERT_TRUE(waitForState(waiting, "awaiting_approval"));

  auto browser = scenario("axe", adminToken(),
                          {{"FLOTILLA_DEPLOYMENT", waiting},
                           {"FLOTILLA_SERVICE", "web"},
                           {"FLOTILLA_VERSION", "1.0.0"}});
  ASSERT_NE(browser, nullptr);
  const BrowserResult result = browser->finish(120s);
  expectPassed(result);
  const json& violations = result.report.value("violations", json::object());
  for (const char* page : {"login", "overview", "deployment", "agents", "release", "log"}) {
    EXPECT_TRUE(violations.contains(page)) << page << " was not checked: " << result.report.dump(2);
  }
}

// ---- Canaries: real HAProxy and traffic ---------------------------------------------------

class BrowserCanaryTest : public ServiceFleetTest {
 protected:
  std::unique_ptr<BrowserScenario> scenario(const std::string& name,
                                            const std::map<std::string, std::string>& env = {}) {
    return BrowserScenario::start(name, serverUrl(), createToken("screen", "viewer"),
                                  dir() + "/browser-" + name, env);
  }

  // The clusters on the 1.0.0 baseline with traffic, `browser` open and ready, then `plan`
  // submitted and its id told to the page: the id ("" after a failure, recorded).
  std::string rollOutWatched(BrowserScenario& browser, ProcessPlan plan) {
    EXPECT_NO_FATAL_FAILURE(deployBaseline());
    EXPECT_NO_FATAL_FAILURE(startTraffic());
    if (HasFatalFailure() || !browser.waitForMark("ready")) return "";
    const std::string id = submitPlan("canary.yaml", processPlan(std::move(plan)).yaml());
    if (!id.empty()) browser.tell("deployment-id", id);
    return id;
  }
};

// (b) A good canary (10% -> 50% -> 100% on two clusters, wave after wave) watched live: the page
// shows each weight in order without a reload, and ends on `succeeded`, as the API does.
TEST_F(BrowserCanaryTest, GoodCanaryWatchedLive) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoWaves));
  auto browser = scenario("canary_live", {{"FLOTILLA_CLUSTERS", "staging-eu,prod-eu-1"}});
  ASSERT_NE(browser, nullptr);
  const std::string id = rollOutWatched(
      *browser, {.version = "2.0.0", .strategy = kCanarySteps, .metrics = kLenientMetrics});
  ASSERT_FALSE(id.empty());
  const BrowserResult result = browser->finish(180s);
  const auto answers = stopTraffic();
  expectPassed(result);

  EXPECT_EQ(stateOf(id), "succeeded") << deployment(id).dump(2);
  const json ev = events(id);
  for (const auto& c : kTwoWaves.clusters) {
    SCOPED_TRACE(c.cluster);
    // The weights the API's shifts reached ("2.0.0 has 50% of the traffic") are the ones the
    // page showed, in the same order (the page may show 0% before the first shift).
    std::vector<int> api;
    for (const auto& e : stepEvents(ev, "stage.succeeded", c.cluster, "shift")) {
      std::smatch m;
      const std::string message = e.value("message", "");
      if (std::regex_search(message, m, std::regex("has ([0-9]+)% of the traffic"))) {
        api.push_back(std::stoi(m[1].str()));
      }
    }
    EXPECT_EQ(api, (std::vector<int>{10, 50, 100})) << ev.dump(1);
    std::vector<int> page;
    for (const auto& text : result.report["weights_seen"].value(c.cluster, json::array())) {
      std::smatch m;
      const std::string t = text.get<std::string>();
      if (!std::regex_match(t, m, std::regex("([0-9]+)%"))) continue;
      const int w = std::stoi(m[1].str());
      if (w > 0 && (page.empty() || page.back() != w)) page.push_back(w);
    }
    EXPECT_EQ(page, api);
    EXPECT_EQ(tally(answers.at(c.cluster)).failed, 0u) << tally(answers.at(c.cluster)).describe();
    std::cerr << "[browser] " << c.cluster << "'s weight cell showed "
              << result.report["weights_seen"].value(c.cluster, json::array()).dump() << "\n";
  }
}

// (c) A bad canary: the page shows the rollback reason with the measured value and threshold,
// and a chart point of the new version above the threshold line, as the API's figures have it.
TEST_F(BrowserCanaryTest, BadCanaryShowsTheReasonAndThePointOverTheLimit) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kOneCluster));
  auto browser = scenario("canary_rollback", {{"FLOTILLA_CLUSTER", "staging-eu"}});
  ASSERT_NE(browser, nullptr);
  const std::string id =
      rollOutWatched(*browser, {.version = "2.0.0",
                                .command_extra = onlyFor("2.0.0", "--error-rate 0.2"),
                                .strategy = kCanarySteps,
                                .metrics = kStrictMetrics});
  ASSERT_FALSE(id.empty());
  const BrowserResult result = browser->finish(180s);
  stopTraffic();
  expectPassed(result);
  ASSERT_TRUE(result.report.is_object()) << result.output;

  const json detail = deployment(id);
  ASSERT_EQ(detail["state"], "rolled_back") << detail.dump(2);
  const std::string reason = detail.value("reason", "");
  const std::string message = detail["failure"].value("message", "");
  const std::string shown = result.report.value("reason_text", "");
  EXPECT_NE(shown.find(reason), std::string::npos) << "page: " << shown << "\nAPI: " << reason;
  // The measured error rate and the threshold, as the agent's message has them, on the page.
  std::smatch measured;
  std::smatch threshold;
  ASSERT_TRUE(std::regex_search(message, measured, std::regex("error rate ([0-9.]+)"))) << message;
  ASSERT_TRUE(std::regex_search(message, threshold, std::regex("threshold ([0-9.]+)"))) << message;
  EXPECT_NE(shown.find("error rate " + measured[1].str()), std::string::npos) << shown;
  EXPECT_NE(shown.find("threshold " + threshold[1].str()), std::string::npos) << shown;

  // The point above the line is one the agent measured: a window's candidate error rate (or
  // p95) over that window's limit in the API's cluster.analysis events.
  const json& charts = result.report["charts"];
  const std::string which = result.report.value("point_above", "");
  ASSERT_TRUE(which == "error_rate" || which == "latency") << result.report.dump(2);
  const std::string key = which == "error_rate" ? "error_rate" : "latency_p95_s";
  bool matched = false;
  for (const auto& e : eventsOf(events(id), "cluster.analysis", "staging-eu")) {
    const json& f = e["data"];
    if (!f.is_object() || !f["limits"][key].is_number()) continue;
    const double value =
        f["candidate"].value(key, json()).is_number() ? f["candidate"][key].get<double>() : -1;
    for (const auto& point : charts[which]["candidate"]) {
      if (std::abs(point["value"].get<double>() - value) < 1e-9 &&
          value > f["limits"][key].get<double>()) {
        matched = true;
      }
    }
  }
  EXPECT_TRUE(matched) << "no page point matches an API window over its limit: " << charts.dump(2);
}

// (g) A screenshot of the deployment page mid-canary, kept in the build's test-artifacts.
TEST_F(BrowserCanaryTest, ScreenshotMidCanaryIsKept) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kOneCluster));
  const std::string shot = std::string(kBrowserArtifactsDir) + "/dashboard-canary.png";
  std::filesystem::remove(shot);
  auto browser = scenario("canary_screenshot",
                          {{"FLOTILLA_CLUSTER", "staging-eu"}, {"FLOTILLA_SCREENSHOT", shot}});
  ASSERT_NE(browser, nullptr);
  const std::string id = rollOutWatched(
      *browser, {.version = "2.0.0", .strategy = kCanarySteps, .metrics = kLenientMetrics});
  ASSERT_FALSE(id.empty());
  const BrowserResult result = browser->finish(120s);
  expectPassed(result);
  // Taken mid-canary: the API still had the rollout running then; it ends well.
  ASSERT_TRUE(waitForState(id, "succeeded", 90s));
  stopTraffic();
  const std::string png = readFile(shot);
  ASSERT_GT(png.size(), 10000u) << shot;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << shot;
  std::cerr << "[browser] screenshot of the deployment page mid-canary: " << shot << "\n";
}

}  // namespace
}  // namespace flotilla::integration
