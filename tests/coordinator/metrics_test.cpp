// Tests for coordinator/metrics.cpp: what each counter and gauge adds up to, and that /metrics is
// well-formed Prometheus text (every family declared once, before its samples).
#include "coordinator/metrics.hpp"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace flotilla::coordinator {
namespace {

// Every family /metrics has, with its type.
const std::map<std::string, std::string> kFamilies = {
    {"flotilla_frames_received_total", "counter"},
    {"flotilla_frames_dropped_total", "counter"},
    {"flotilla_stale_results_total", "counter"},
    {"flotilla_store_commits_total", "counter"},
    {"flotilla_transitions_total", "counter"},
    {"flotilla_store_written_bytes_total", "counter"},
    {"flotilla_store_commit_failures_total", "counter"},
    {"flotilla_deployments_submitted_total", "counter"},
    {"flotilla_plans_refused_total", "counter"},
    {"flotilla_alerts_total", "counter"},
    {"flotilla_http_connections_cut_total", "counter"},
    {"flotilla_http_requests_refused_total", "counter"},
    {"flotilla_http_connections", "gauge"},
    {"flotilla_http_event_streams", "gauge"},
    {"flotilla_webhook_posts_total", "counter"},
    {"flotilla_http_requests_total", "counter"},
    {"flotilla_deployments", "gauge"},
    {"flotilla_agents", "gauge"},
    {"flotilla_epoch", "gauge"},
    {"flotilla_freeze_active", "gauge"},
};

// The text parsed as Prometheus reads it: samples by "name{labels}", each checked to follow
// the HELP and TYPE of its family. Failures are recorded against the test.
struct Exposition {
  std::map<std::string, std::string> types;    // family -> type
  std::map<std::string, std::string> samples;  // "name{labels}" or "name" -> value
};

Exposition parse(const std::string& text) {
  static const std::regex kHelp(R"(# HELP ([a-z_]+) \S.*)");
  static const std::regex kType(R"(# TYPE ([a-z_]+) (counter|gauge))");
  // Labels: one or more, each value with \\, \" and \n escaped as the format says.
  static const std::regex kSample(
      R"(([a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-z_]+="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?[0-9]+))");
  Exposition out;
  std::istringstream in(text);
  std::string line;
  std::string current;  // the family whose samples may follow
  std::string helped;   // the family whose HELP was the line before
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      helped = m[1];
    } else if (std::regex_match(line, m, kType)) {
      EXPECT_EQ(m[1], helped) << "TYPE without its HELP: " << line;
      EXPECT_EQ(out.types.count(m[1]), 0u) << "declared twice: " << line;
      out.types[m[1]] = m[2];
      current = m[1];
    } else if (std::regex_match(line, m, kSample)) {
      EXPECT_EQ(m[1], current) << "a sample outside its family: " << line;
      const std::string key = std::string(m[1]) + std::string(m[2]);
      EXPECT_EQ(out.samples.count(key), 0u) << "twice: " << line;
      out.samples[key] = m[3];
    } else {
      ADD_FAILURE() << "not Prometheus text: \"" << line << '"';
    }
  }
  return out;
}

// The sample's value, or "absent".
std::string valueOf(const Metrics& m, const std::string& sample) {
  const Exposition e = parse(m.render());
  auto it = e.samples.find(sample);
  return it == e.samples.end() ? "absent" : it->second;
}

TEST(Metrics, AFreshRenderDeclaresEveryFamilyWithZeros) {
  const Metrics m;
  const Exposition e = parse(m.render());
  EXPECT_EQ(e.types, kFamilies);
  // Families without labels have their one sample; labelled ones have none yet.
  EXPECT_EQ(e.samples, (std::map<std::string, std::string>{
                           {"flotilla_stale_results_total", "0"},
                           {"flotilla_store_commits_total", "0"},
                           {"flotilla_transitions_total", "0"},
                           {"flotilla_store_written_bytes_total", "0"},
                           {"flotilla_store_commit_failures_total", "0"},
                           {"flotilla_deployments_submitted_total", "0"},
                           {"flotilla_plans_refused_total", "0"},
                           {"flotilla_http_connections", "0"},
                           {"flotilla_http_event_streams", "0"},
                           {"flotilla_epoch", "0"},
                       }));
}

TEST(Metrics, LabelledCountersCountEachLabelApart) {
  Metrics m;
  m.frameReceived("register");
  m.frameReceived("register");
  m.frameReceived("heartbeat");
  m.frameDropped("bad_nonce");
  m.alertRaised("error_rate");
  m.alertRaised("error_rate");
  m.alertRaised("latency_p99");
  m.webhook("delivered");
  m.webhook("failed");
  m.webhook("delivered");
  m.httpConnectionCut("header_deadline");
  m.httpRefused("rate_limited");
  m.httpRefused("streams_full");
  m.httpRefused("rate_limited");
  m.httpRequest(200);
  m.httpRequest(200);
  m.httpRequest(404);
  const Exposition e = parse(m.render());
  const std::map<std::string, std::string> want = {
      {"flotilla_frames_received_total{type=\"register\"}", "2"},
      {"flotilla_frames_received_total{type=\"heartbeat\"}", "1"},
      {"flotilla_frames_dropped_total{reason=\"bad_nonce\"}", "1"},
      {"flotilla_alerts_total{rule=\"error_rate\"}", "2"},
      {"flotilla_alerts_total{rule=\"latency_p99\"}", "1"},
      {"flotilla_webhook_posts_total{result=\"delivered\"}", "2"},
      {"flotilla_webhook_posts_total{result=\"failed\"}", "1"},
      {"flotilla_http_connections_cut_total{reason=\"header_deadline\"}", "1"},
      {"flotilla_http_requests_refused_total{reason=\"rate_limited\"}", "2"},
      {"flotilla_http_requests_refused_total{reason=\"streams_full\"}", "1"},
      {"flotilla_http_requests_total{code=\"200\"}", "2"},
      {"flotilla_http_requests_total{code=\"404\"}", "1"},
  };
  for (const auto& [sample, value] : want) {
    auto it = e.samples.find(sample);
    ASSERT_NE(it, e.samples.end()) << sample;
    EXPECT_EQ(it->second, value) << sample;
  }
  EXPECT_EQ(e.samples.size(), want.size() + 10) << "and the ten unlabelled samples";
}

TEST(Metrics, CommitsAndTransitionsAddUpAndWrittenBytesIsTheLatestTotal) {
  Metrics m;
  m.commit(true);
  m.commit(true);
  m.commit(false);
  m.transitions(1);
  m.transitions(250);
  m.staleResult();
  m.deploymentSubmitted();
  m.planRefused();
  m.planRefused();
  m.setStoreWrittenBytes(4096);
  m.setStoreWrittenBytes(10000);
  EXPECT_EQ(valueOf(m, "flotilla_store_commits_total"), "2");
  EXPECT_EQ(valueOf(m, "flotilla_store_commit_failures_total"), "1");
  EXPECT_EQ(valueOf(m, "flotilla_transitions_total"), "251");
  EXPECT_EQ(valueOf(m, "flotilla_stale_results_total"), "1");
  EXPECT_EQ(valueOf(m, "flotilla_deployments_submitted_total"), "1");
  EXPECT_EQ(valueOf(m, "flotilla_plans_refused_total"), "2");
  // The store's running total, not a sum of the reports.
  EXPECT_EQ(valueOf(m, "flotilla_store_written_bytes_total"), "10000");
}

TEST(Metrics, GaugesShowTheLastValuesSet) {
  Metrics m;
  m.setGauges({{"running", 2}, {"succeeded", 5}}, {{"connected", 3}, {"lost", 1}}, 7);
  m.setHttpConnections(12);
  m.setHttpStreams(4);
  EXPECT_EQ(valueOf(m, "flotilla_deployments{state=\"running\"}"), "2");
  EXPECT_EQ(valueOf(m, "flotilla_deployments{state=\"succeeded\"}"), "5");
  EXPECT_EQ(valueOf(m, "flotilla_agents{state=\"connected\"}"), "3");
  EXPECT_EQ(valueOf(m, "flotilla_agents{state=\"lost\"}"), "1");
  EXPECT_EQ(valueOf(m, "flotilla_epoch"), "7");
  EXPECT_EQ(valueOf(m, "flotilla_http_connections"), "12");
  EXPECT_EQ(valueOf(m, "flotilla_http_event_streams"), "4");
  // A new set replaces the old: a state no longer counted is gone, not stale.
  m.setGauges({{"succeeded", 7}}, {{"connected", 4}}, 8);
  m.setHttpConnections(0);
  EXPECT_EQ(valueOf(m, "flotilla_deployments{state=\"running\"}"), "absent");
  EXPECT_EQ(valueOf(m, "flotilla_deployments{state=\"succeeded\"}"), "7");
  EXPECT_EQ(valueOf(m, "flotilla_agents{state=\"lost\"}"), "absent");
  EXPECT_EQ(valueOf(m, "flotilla_agents{state=\"connected\"}"), "4");
  EXPECT_EQ(valueOf(m, "flotilla_epoch"), "8");
  EXPECT_EQ(valueOf(m, "flotilla_http_connections"), "0");
}

TEST(Metrics, FreezeGaugesEscapeTheEnvironment) {
  Metrics m;
  m.setFreezes({{"", true}, {"production", false}, {"odd\"env\\", true}});
  EXPECT_EQ(valueOf(m, "flotilla_freeze_active{scope=\"fleet\",environment=\"\"}"), "1");
  EXPECT_EQ(valueOf(m, "flotilla_freeze_active{scope=\"environment\",environment=\"production\"}"),
            "0");
  EXPECT_EQ(
      valueOf(m, "flotilla_freeze_active{scope=\"environment\",environment=\"odd\\\"env\\\\\"}"),
      "1")
      << m.render();
}

TEST(Metrics, CountsFromManyThreadsAreAllKept) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 2000; ++i) {
        m.frameReceived("heartbeat");
        m.httpRequest(200);
        m.commit(true);
        m.transitions(2);
        if (i % 100 == 0) (void)m.render();  // a scrape meanwhile
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(valueOf(m, "flotilla_frames_received_total{type=\"heartbeat\"}"), "8000");
  EXPECT_EQ(valueOf(m, "flotilla_http_requests_total{code=\"200\"}"), "8000");
  EXPECT_EQ(valueOf(m, "flotilla_store_commits_total"), "8000");
  EXPECT_EQ(valueOf(m, "flotilla_transitions_total"), "16000");
}

}  // namespace
}  // namespace flotilla::coordinator
