// Following a deployment against a fake coordinator on loopback: the event stream, the fall-back
// to polling when streams are taken, resuming after a dropped stream without repeats, `wait`'s
// verdicts and deadline, `events`; and the outage rules with a fake clock.
#include "cli/follow.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "common/time_format.hpp"
#include "tests/cli/command_output.hpp"
#include "tests/support/http_server.hpp"

namespace flotilla::cli {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json event(int seq, const std::string& type) {
  return {
      {"seq", seq}, {"time", "2026-11-27T01:00:0" + std::to_string(seq) + ".000Z"}, {"type", type}};
}

// A coordinator with deployment d-1: its events, its state, and how it serves the stream.
class FakeCoordinator {
 public:
  enum class StreamMode { kAll, kFirstThenDrop, kBusy };

  FakeCoordinator(std::vector<json> events, StreamMode mode) : events_(std::move(events)) {
    auto& s = local_.server();
    s.Get("/api/v1/deployments/d-1", [this](const httplib::Request&, httplib::Response& res) {
      // Final from the second look on, when the stream drops after its first event.
      const bool final = mode_ != StreamMode::kFirstThenDrop || ++detail_reads_ > 1;
      std::lock_guard lock(mu_);
      res.set_content(json{{"id", "d-1"}, {"state", final ? final_state_ : "running"}}.dump(),
                      "application/json");
    });
    s.Get("/api/v1/deployments/d-1/events",
          [this](const httplib::Request& req, httplib::Response& res) {
            long long after = req.has_param("after") ? std::stoll(req.get_param_value("after")) : 0;
            {
              std::lock_guard lock(mu_);
              afters_.push_back(after);
            }
            json list = json::array();
            for (const auto& e : events_) {
              if (e["seq"].get<long long>() > after) list.push_back(e);
            }
            const bool wants_stream = req.get_header_value("Accept") == "text/event-stream";
            if (wants_stream && mode_ == StreamMode::kBusy) {
              res.status = 503;
              res.set_content(R"({"error":"every event stream is taken"})", "application/json");
              return;
            }
            if (!wants_stream) {
              res.set_content(json{{"events", list}}.dump(), "application/json");
              return;
            }
            std::string body;
            for (const auto& e : list) {
              body += "data: " + e.dump() + "\n\n";
              if (mode_ == StreamMode::kFirstThenDrop && after == 0) break;
            }
            res.set_content(body, "text/event-stream");
          });
    mode_ = mode;
    local_.start();
  }

  std::string url() const { return local_.url(); }
  void setFinalState(std::string state) {
    std::lock_guard lock(mu_);
    final_state_ = std::move(state);
  }
  std::vector<long long> afters() {
    std::lock_guard lock(mu_);
    return afters_;
  }

 private:
  support::LocalHttpServer local_;
  std::vector<json> events_;
  StreamMode mode_ = StreamMode::kAll;
  std::string final_state_ = "succeeded";
  std::atomic<int> detail_reads_{0};
  std::mutex mu_;
  std::vector<long long> afters_;  // the ?after= of each events request, in order
};

std::vector<std::string> typesFollowed(FakeCoordinator& fake, json* final_detail,
                                       std::vector<std::string>* notes = nullptr) {
  Api api(fake.url(), "", "");
  std::vector<std::string> types;
  *final_detail = followEvents(
      api, "d-1", [&](const json& e) { types.push_back(e["type"].get<std::string>()); },
      [&](const std::string& note) {
        if (notes != nullptr) notes->push_back(note);
      });
  return types;
}

const std::vector<json> kEvents = {event(1, "deployment.submitted"), event(2, "stage.started"),
                                   event(3, "deployment.succeeded")};

TEST(FollowEvents, ReadsTheStreamToTheEnd) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kAll);
  json detail;
  EXPECT_EQ(
      typesFollowed(fake, &detail),
      (std::vector<std::string>{"deployment.submitted", "stage.started", "deployment.succeeded"}));
  EXPECT_EQ(detail["state"], "succeeded");
  EXPECT_EQ(fake.afters(), (std::vector<long long>{0}));
}

TEST(FollowEvents, EveryStreamTakenFallsBackToPolling) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kBusy);
  json detail;
  EXPECT_EQ(typesFollowed(fake, &detail).size(), 3u);
  EXPECT_EQ(detail["state"], "succeeded");
  // The refused stream, its poll, then the last poll after the final state was seen.
  EXPECT_EQ(fake.afters(), (std::vector<long long>{0, 0, 3}));
}

TEST(FollowEvents, ADroppedStreamResumesAfterTheLastEventShown) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kFirstThenDrop);
  json detail;
  std::vector<std::string> notes;
  EXPECT_EQ(
      typesFollowed(fake, &detail, &notes),
      (std::vector<std::string>{"deployment.submitted", "stage.started", "deployment.succeeded"}));
  EXPECT_EQ(fake.afters(), (std::vector<long long>{0, 1}));
  for (const auto& note : notes) EXPECT_EQ(note, "");
}

TEST(EventsCommand, OneAlignedLinePerEvent) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kAll);
  Api api(fake.url(), "", "");
  CommandOutput listed = runCaptured([&] { return eventsCommand(api, "d-1", false); });
  EXPECT_EQ(listed.exit_code, kExitOk);
  EXPECT_EQ(listed.out,
            "2026-11-27T01:00:01.000Z  deployment.submitted  -\n"
            "2026-11-27T01:00:02.000Z  stage.started         -\n"
            "2026-11-27T01:00:03.000Z  deployment.succeeded  -\n");
  CommandOutput followed = runCaptured([&] { return eventsCommand(api, "d-1", true); });
  EXPECT_EQ(followed.exit_code, kExitOk);
  EXPECT_EQ(std::count(followed.out.begin(), followed.out.end(), '\n'), 3);
}

TEST(EventFilterQuery, EncodesTheFiltersAndTurnsADurationIntoATime) {
  const auto now = common::fromUnixMillis(*common::parseRfc3339("2026-11-27T02:00:00Z"));
  EXPECT_EQ(eventFilterQuery({}, now), "");
  EXPECT_EQ(eventFilterQuery({"stage.*,alert", "prod-eu-1", "10m"}, now),
            "type=stage.%2A%2Calert&cluster=prod-eu-1&since=2026-11-27T01%3A50%3A00.000Z");
  // Anything else is the coordinator's to judge (and refuse with its reason).
  EXPECT_EQ(eventFilterQuery({"", "", "yesterday"}, now), "since=yesterday");
  EXPECT_EQ(eventsPath("d-1", 4, "cluster=eu"),
            "/api/v1/deployments/d-1/events?after=4&cluster=eu");
  EXPECT_EQ(eventsPath("d-1", 0, "cluster=eu"), "/api/v1/deployments/d-1/events?cluster=eu");
}

// Piped `watch` prints a cluster when what is known of it changes, not on every poll.
TEST(ClusterChanges, OnlyWhatChanged) {
  const auto now = common::fromUnixMillis(*common::parseRfc3339("2026-11-27T02:00:00Z"));
  auto detail = [](const std::string& state, int step, int weight) {
    return json{{"waves",
                 {{{"name", "prod"},
                   {"clusters",
                    {{{"name", "eu"},
                      {"state", state},
                      {"step", state == "pending" ? "" : "shift"},
                      {"strategy_step", step},
                      {"strategy_steps", 3},
                      {"weight", weight},
                      {"to_version", "2.0.0"}},
                     {{"name", "us"}, {"state", "pending"}}}}}}}};
  };
  std::map<std::string, std::string> shown;
  EXPECT_TRUE(clusterChanges(detail("pending", 0, 0), nullptr, now, shown).empty());
  EXPECT_EQ(clusterChanges(detail("shifting", 1, 10), nullptr, now, shown),
            std::vector<std::string>{
                "2026-11-27T02:00:00.000Z  cluster  eu shifting  shift 1/3 10%  (none) → 2.0.0"});
  EXPECT_TRUE(clusterChanges(detail("shifting", 1, 10), nullptr, now, shown).empty());
  const json lost = json::array({{{"cluster", "eu"}, {"state", "lost"}}});
  EXPECT_EQ(clusterChanges(detail("shifting", 1, 10), lost, now, shown),
            std::vector<std::string>{"2026-11-27T02:00:00.000Z  cluster  eu shifting  shift 1/3 "
                                     "10%  (none) → 2.0.0  agent lost"});
}

TEST(WaitCommand, TheExitCodeTellsHowItEnded) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kAll);
  Api api(fake.url(), "", "");
  CommandOutput ok = runCaptured([&] { return waitCommand(api, "d-1", std::nullopt, ""); });
  EXPECT_EQ(ok.exit_code, kExitOk);
  EXPECT_EQ(ok.out, "d-1 succeeded\n");

  fake.setFinalState("rolled_back");
  CommandOutput rolled_back = runCaptured([&] { return waitCommand(api, "d-1", 5s, "5s"); });
  EXPECT_EQ(rolled_back.exit_code, kExitFailed);
  EXPECT_EQ(rolled_back.out, "d-1 rolled_back\n");
}

TEST(WaitCommand, GivesUpAfterTheTimeoutWithItsOwnExitCode) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kFirstThenDrop);  // running at first
  fake.setFinalState("running");
  Api api(fake.url(), "", "");
  CommandOutput waited = runCaptured([&] { return waitCommand(api, "d-1", 200ms, "200ms"); });
  EXPECT_EQ(waited.exit_code, kExitTimedOut);
  EXPECT_EQ(waited.out, "d-1 running\n");
  EXPECT_EQ(waited.err, "flotilla: gave up waiting for d-1 after 200ms\n");
}

TEST(WaitCommand, AnUnknownDeploymentIsTroubleNotFailure) {
  FakeCoordinator fake(kEvents, FakeCoordinator::StreamMode::kAll);
  Api api(fake.url(), "", "");
  // The fake knows only d-1: its 404 is not in the coordinator's error format.
  CommandOutput waited = runCaptured([&] { return waitCommand(api, "d-2", 1s, "1s"); });
  EXPECT_EQ(waited.exit_code, kExitTrouble) << waited.err;
}

class FakeClock : public common::Clock {
 public:
  // Interface
  common::SteadyTime now() const override { return now_; }
  common::SystemTime wallNow() const override { return {}; }

  void advance(std::chrono::milliseconds by) { now_ += by; }

 private:
  common::SteadyTime now_{};
};

TEST(OutageGuard, NoGraceBeforeTheFirstAnswer) {
  FakeClock clock;
  OutageGuard guard(clock);
  CliError refused("cannot reach", kExitTrouble, "connection refused");
  EXPECT_THROW(guard.failed(refused), CliError);
  // A rate limit is an answer: ridden out even on the first request.
  EXPECT_EQ(guard.failed(CliError("busy", kExitFailed, "HTTP 429")),
            "lost contact with the coordinator (HTTP 429); retrying for up to 30s");
}

TEST(OutageGuard, OneNotePerOutageForUpToThirtySeconds) {
  FakeClock clock;
  OutageGuard guard(clock);
  guard.succeeded();
  CliError refused("cannot reach", kExitTrouble, "connection refused");
  EXPECT_EQ(guard.failed(refused),
            "lost contact with the coordinator (connection refused); retrying for up to 30s");
  clock.advance(29s);
  EXPECT_EQ(guard.failed(refused), "");
  clock.advance(2s);
  EXPECT_THROW(guard.failed(refused), CliError);

  // An answer ends the outage; the next one gets its own note and grace.
  guard.succeeded();
  EXPECT_NE(guard.failed(refused), "");
  // What is not worth retrying is never ridden out.
  EXPECT_THROW(guard.failed(CliError("no deployment named d-1", kExitFailed)), CliError);
}

TEST(ExitCodeForFinalState, OnlySuccessIsZero) {
  EXPECT_EQ(exitCodeForFinalState("succeeded"), kExitOk);
  EXPECT_EQ(exitCodeForFinalState("rolled_back"), kExitFailed);
  EXPECT_EQ(exitCodeForFinalState("cancelled"), kExitFailed);
}

}  // namespace
}  // namespace flotilla::cli
