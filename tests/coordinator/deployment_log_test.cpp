// Tests for the deployment log (coordinator/deployment_log.cpp) and notes
// (coordinator/deployment_notes.cpp): the new fields' stored form, the submission form, entries
// built from a deployment and its events, the environments of a deployment, `since`.
#include "coordinator/deployment_log.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/records.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using DeploymentLog = DeploymentTest;
using nlohmann::json;

AgentsByName agentsOf(const Registry& registry) {
  std::vector<AgentInfo> agents;
  for (const auto& [name, a] : registry.agents()) agents.push_back(a);
  return agentsByName(agents);
}

TEST_F(DeploymentLog, ReleaseFieldsNotesAndFinishTimeRoundTripInBothForms) {
  Deployment d = start(threeWaves());
  d.changes = "## 2.0.0\n- faster checkout\n- \"quotes\" and <b>tags</b> ✓\n";
  d.release_notes_url = "https://example.com/releases/2.0.0";
  d.notes = {{"cache was cold; warm it first", "alice", 1700000000000},
             {"second\nline", "bob", 1700000001000}};
  d.finished_ms = 1700000002000;
  auto whole = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(whole.ok()) << whole.status().toString();
  EXPECT_EQ(whole->changes, d.changes);
  EXPECT_EQ(whole->release_notes_url, d.release_notes_url);
  EXPECT_EQ(whole->notes, d.notes);
  EXPECT_EQ(whole->finished_ms, d.finished_ms);
  auto header = deploymentFromStored(deploymentHeaderJson(d), StoredClusters{}, true);
  ASSERT_TRUE(header.ok()) << header.status().toString();
  EXPECT_EQ(header->notes, d.notes);
  EXPECT_EQ(header->changes, d.changes);
}

TEST_F(DeploymentLog, ARecordFromBeforeTheLogLoadsWithoutItsFields) {
  Deployment d = start(threeWaves());
  json j = json::parse(deploymentToJson(d));
  for (const char* key : {"changes", "release_notes_url", "notes", "finished_ms"}) j.erase(key);
  auto back = deploymentFromJson(j.dump());
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_TRUE(back->changes.empty());
  EXPECT_TRUE(back->notes.empty());
  EXPECT_EQ(back->finished_ms, 0);
}

TEST_F(DeploymentLog, NotesAreAppendedInAnyStateWithAnEvent) {
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());  // rolls back; ends rolled back
  while (d.findCluster("staging-eu")->in_flight) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(isFinal(d.state)) << deploymentStateName(d.state);
  fx_ = Effects{};
  ASSERT_TRUE(
      addNote(d, "the build cache hid it\nnext time: clean build", bob_, ctxAt(5000), fx_).ok());
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_EQ(d.notes[0].by, "bob");
  EXPECT_EQ(d.notes[0].at_ms, 5000);
  EXPECT_TRUE(fx_.changed);
  const Event* e = findEvent("deployment.note");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->message, "by bob: the build cache hid it");
}

TEST_F(DeploymentLog, BadNotesAreRefusedAndChangeNothing) {
  Deployment d = start(threeWaves());
  Effects fx;
  EXPECT_TRUE(addNote(d, "", alice_, ctx(), fx).isInvalidArgument());
  EXPECT_TRUE(addNote(d, " \n\t", alice_, ctx(), fx).isInvalidArgument());
  EXPECT_TRUE(addNote(d, std::string(common::kMaxNoteBytes + 1, 'x'), alice_, ctx(), fx)
                  .isInvalidArgument());
  EXPECT_TRUE(addNote(d, "bell \x07", alice_, ctx(), fx).isInvalidArgument());
  EXPECT_TRUE(addNote(d, "broken \xff utf-8", alice_, ctx(), fx).isInvalidArgument());
  EXPECT_TRUE(d.notes.empty());
  EXPECT_FALSE(fx.changed);
  EXPECT_TRUE(addNote(d, std::string(common::kMaxNoteBytes, 'x'), alice_, ctx(), fx).ok());
  for (size_t i = 1; i < kMaxNotes; ++i) ASSERT_TRUE(addNote(d, "n", alice_, ctx(), fx).ok());
  EXPECT_TRUE(addNote(d, "one too many", alice_, ctx(), fx).isFailedPrecondition());
  EXPECT_EQ(d.notes.size(), kMaxNotes);
}

TEST_F(DeploymentLog, TheSubmissionFormCarriesThePlanAndTheRelease) {
  auto form = readSubmissionForm(json{
      {"plan", "service: x"}, {"changes", "- one\n- two"}, {"release_notes_url", "https://a/b"}}
                                     .dump());
  ASSERT_TRUE(form.ok()) << form.status().toString();
  EXPECT_EQ(form->plan, "service: x");
  EXPECT_EQ(form->changes, "- one\n- two");
  EXPECT_EQ(form->release_notes_url, "https://a/b");
  EXPECT_TRUE(isSubmissionForm("application/vnd.flotilla.submission+json; charset=utf-8"));
  EXPECT_FALSE(isSubmissionForm("application/json"));
}

TEST_F(DeploymentLog, ABadSubmissionFormIsRefused) {
  auto refused = [](const json& body) {
    auto form = readSubmissionForm(body.dump());
    return !form.ok() && form.status().isInvalidArgument();
  };
  EXPECT_TRUE(refused(json::array()));
  EXPECT_TRUE(refused(json{{"changes", "x"}}));  // no plan
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"extra", "x"}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"changes", 3}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"release_notes_url", "ftp://x"}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"release_notes_url", "javascript:alert(1)"}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"release_notes_url", "https://a b"}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"release_notes_url", "https://"}}));
  EXPECT_TRUE(
      refused(json{{"plan", "p"}, {"release_notes_url", "https://" + std::string(3000, 'a')}}));
  EXPECT_TRUE(
      refused(json{{"plan", "p"}, {"changes", std::string(common::kMaxChangesBytes + 1, 'x')}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"changes", "esc \x1b[31m"}}));
  EXPECT_FALSE(readSubmissionForm("{").ok());
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"hotfix", "true"}}));
  EXPECT_TRUE(refused(json{{"plan", "p"}, {"hotfix", true}, {"hotfix_reason", 7}}));
}

TEST_F(DeploymentLog, TheSubmissionFormCarriesAHotfix) {
  auto form =
      readSubmissionForm(json{{"plan", "p"}, {"hotfix", true}, {"hotfix_reason", "INC-7"}}.dump());
  ASSERT_TRUE(form.ok()) << form.status().toString();
  EXPECT_TRUE(form->hotfix);
  EXPECT_EQ(form->hotfix_reason, std::optional<std::string>("INC-7"));
  auto plain = readSubmissionForm(json{{"plan", "p"}}.dump());
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->hotfix);
  EXPECT_FALSE(plain->hotfix_reason.has_value());
}

TEST_F(DeploymentLog, TheEnvironmentsAreTheAgentsLabelsOfItsClusters) {
  Deployment d = start(threeWaves());  // staging resolved; prod-eu named; prod-us by selector
  EXPECT_EQ(deploymentEnvironments(d, agentsOf(registry_)),
            (std::vector<std::string>{"production", "staging"}));
  common::Plan staging_only = threeWaves();
  staging_only.waves.resize(1);
  Deployment s = start(staging_only);
  EXPECT_EQ(deploymentEnvironments(s, agentsOf(registry_)), (std::vector<std::string>{"staging"}));
  // A pending wave's selector that pins the environment counts; an unknown agent adds nothing.
  common::Plan pinned = threeWaves();
  pinned.waves.resize(1);
  pinned.waves[0].clusters = {"gone"};
  common::Wave more;
  more.name = "dev";
  more.selector = {{"environment", "development"}};
  pinned.waves.push_back(more);
  Deployment p = start(pinned);
  EXPECT_EQ(deploymentEnvironments(p, agentsOf(registry_)),
            (std::vector<std::string>{"development"}));
}

TEST_F(DeploymentLog, AnEntryTellsWhatHappened) {
  common::Plan p = threeWaves();
  p.waves[1].approval_required = true;
  versions_["staging-eu"] = "1.9.0";
  versions_["prod-eu-1"] = "1.9.0";
  versions_["prod-eu-2"] = "1.8.5";
  Deployment d = start(p);
  succeedAll(d);
  ASSERT_EQ(d.state, DeploymentState::kAwaitingApproval);
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "prod-eu", bob_, ctxAt(1000), fx_).ok());
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::FAILED).ok());  // the build fails: roll back
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  d.changes = "- new tax rules";
  d.release_notes_url = "https://example.com/r/2.0.0";
  d.notes = {{"taxes need a feature flag", "carol", 9000}};
  std::vector<StoredEvent> issues = {
      {7, 2000, Event{"stage.failed", "prod-eu", "prod-eu-1", "build", "exit 1: msg"}},
      {8, 2100, Event{"alert", "prod-eu", "prod-eu-2", "analyze", "error_rate: 2.0.0: 9%"}}};
  json entry = logEntryJson(d, issues, 3, false, {"production", "staging"});
  EXPECT_EQ(entry["id"], "checkout-1");
  EXPECT_EQ(entry["service"], "checkout");
  EXPECT_EQ(entry["version"], "2.0.0");
  EXPECT_EQ(entry["previous_versions"], json({"1.9.0", "1.8.5"}));
  EXPECT_EQ(entry["environments"], json({"production", "staging"}));
  EXPECT_EQ(entry["submitted_by"], "alice");
  ASSERT_EQ(entry["approvals"].size(), 1u);
  EXPECT_EQ(entry["approvals"][0]["wave"], "prod-eu");
  EXPECT_EQ(entry["approvals"][0]["by"], "bob");
  EXPECT_EQ(entry["approvals"][0]["at"], "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(entry["changes"], "- new tax rules");
  EXPECT_EQ(entry["release_notes_url"], "https://example.com/r/2.0.0");
  ASSERT_EQ(entry["issues"].size(), 2u);
  EXPECT_EQ(entry["issues"][0]["type"], "stage.failed");
  EXPECT_EQ(entry["issues"][0]["cluster"], "prod-eu-1");
  EXPECT_EQ(entry["issues"][1]["type"], "alert");
  EXPECT_EQ(entry["issues_total"], 3);
  EXPECT_TRUE(entry["rolled_back"].get<bool>());
  EXPECT_NE(entry["rollback_cause"].get<std::string>().find("prod-eu-1"), std::string::npos);
  EXPECT_EQ(entry["failure"]["cluster"], "prod-eu-1");
  EXPECT_EQ(entry["state"], "rolling_back");
  EXPECT_TRUE(entry["finished_at"].is_null());
  ASSERT_EQ(entry["notes"].size(), 1u);
  EXPECT_EQ(entry["notes"][0]["by"], "carol");
  EXPECT_EQ(entry["notes"][0]["text"], "taxes need a feature flag");
}

TEST_F(DeploymentLog, IssueEventsAreFailuresAlertsAndLosses) {
  for (const char* type : {"stage.failed", "alert", "agent.lost", "rollback.failed"}) {
    EXPECT_TRUE(isIssueEvent(Event{type, "", "", "", ""})) << type;
  }
  for (const char* type : {"stage.output", "stage.succeeded", "deployment.note", "wave.approved"}) {
    EXPECT_FALSE(isIssueEvent(Event{type, "", "", "", ""})) << type;
  }
}

TEST_F(DeploymentLog, SinceTakesATimeOrADurationBack) {
  const int64_t now = 10LL * 86400000;
  EXPECT_EQ(*parseSince("1970-01-02T00:00:00Z", now), 86400000);
  EXPECT_EQ(*parseSince("24h", now), now - 86400000);
  EXPECT_EQ(*parseSince("90m", now), now - 90 * 60000);
  EXPECT_EQ(*parseSince("7d", now), now - 7 * 86400000LL);
  for (const char* bad : {"", "d", "7", "-7d", "7days", "yesterday", "1234567d", "1d12h"}) {
    EXPECT_TRUE(parseSince(bad, now).status().isInvalidArgument()) << bad;
  }
}

}  // namespace
}  // namespace flotilla::coordinator::testing
