// The alert webhook sender against a real HTTP server on loopback (cpp-httplib).
#include "coordinator/webhook.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "tests/support/http_server.hpp"
#include "tests/support/wait.hpp"

namespace flotilla::coordinator {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Answers each POST with the next status of `script` (the last one repeats).
class Receiver {
 public:
  explicit Receiver(std::vector<int> script) : script_(std::move(script)) {
    server_.server().Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      bodies_.push_back(req.body);
      res.status = script_[std::min(bodies_.size(), script_.size()) - 1];
    });
    server_.start();
  }
  std::string url() const { return server_.url("/hook"); }
  size_t count() {
    std::lock_guard lock(mu_);
    return bodies_.size();
  }
  std::string body(size_t i) {
    std::lock_guard lock(mu_);
    return bodies_.at(i);
  }

 private:
  std::vector<int> script_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  support::LocalHttpServer server_;  // last: stopped before what its handler uses goes
};

AlertNotice sampleAlert(const std::string& url) {
  AlertNotice a;
  a.deployment_id = "d-000001";
  a.service = "checkout";
  a.version = "2.0.0";
  a.cluster = "prod-eu-1";
  a.wave = "prod";
  a.stage = "prod-eu-1/analyze-0";
  a.rule = "error_rate";
  a.value = 0.2;
  a.threshold = 0.05;
  a.message = "error rate 0.200 is over the 0.050 alert threshold (40 of 200)";
  a.at_ms = 1'800'000'000'000;
  a.config.webhook = url;
  a.config.webhook_timeout = 1s;
  a.config.webhook_attempts = 3;
  return a;
}

// Polls `metrics` until the webhook counter for `result` shows up (the sender is async).
bool waitForResult(Metrics& metrics, const std::string& result) {
  const std::string line = "flotilla_webhook_posts_total{result=\"" + result + "\"} 1";
  return support::pollUntil([&] { return metrics.render().find(line) != std::string::npos; }, 10s,
                            10ms);
}

TEST(WebhookSender, BodyIsSlackCompatibleJsonWithTheFigures) {
  json body = json::parse(WebhookSender::body(sampleAlert("http://x")));
  EXPECT_EQ(body["text"],
            "flotilla: checkout 2.0.0 on prod-eu-1 (wave prod, d-000001): error rate 0.200 is "
            "over the 0.050 alert threshold (40 of 200)");
  EXPECT_EQ(body["id"], "d-000001/prod-eu-1/analyze-0/error_rate");
  EXPECT_EQ(body["rule"], "error_rate");
  EXPECT_EQ(body["value"], 0.2);
  EXPECT_EQ(body["threshold"], 0.05);
  EXPECT_EQ(body["cluster"], "prod-eu-1");
  EXPECT_EQ(body["at"], "2027-01-15T08:00:00.000Z");
}

TEST(WebhookSender, OnlyAllowedPrefixesAtAPathBoundary) {
  const std::vector<std::string> allow = {"https://hooks.example.com", "http://10.0.0.1:8080/x/"};
  EXPECT_TRUE(WebhookSender::allowed("https://hooks.example.com", allow));
  EXPECT_TRUE(WebhookSender::allowed("https://hooks.example.com/deploys", allow));
  EXPECT_TRUE(WebhookSender::allowed("https://hooks.example.com?a=1", allow));
  EXPECT_TRUE(WebhookSender::allowed("http://10.0.0.1:8080/x/y", allow));
  EXPECT_FALSE(WebhookSender::allowed("https://hooks.example.com.evil.net/", allow));
  EXPECT_FALSE(WebhookSender::allowed("https://hooks.example.com@169.254.169.254/", allow));
  EXPECT_FALSE(WebhookSender::allowed("http://10.0.0.1:8080/xy", allow));
  EXPECT_FALSE(WebhookSender::allowed("http://169.254.169.254/latest/meta-data", allow));
  EXPECT_FALSE(WebhookSender::allowed("https://hooks.example.com/", {}));
}

TEST(WebhookSender, ARefusedDestinationIsNeverContacted) {
  Receiver receiver({200});
  Metrics metrics;
  {
    WebhookSender sender(metrics, {"https://hooks.example.com/"});
    sender.post(sampleAlert(receiver.url()));
  }
  EXPECT_EQ(receiver.count(), 0u);
  EXPECT_NE(metrics.render().find("flotilla_webhook_posts_total{result=\"refused\"} 1"),
            std::string::npos)
      << metrics.render();
}

// Posts the sample alert to `receiver` (at most `attempts` times) through a sender allowed to
// reach it, and waits until the sender counts it as `result`; the sender is gone on return.
bool deliver(Receiver& receiver, Metrics& metrics, int attempts, const std::string& result) {
  WebhookSender sender(metrics, {"http://127.0.0.1:"});
  AlertNotice alert = sampleAlert(receiver.url());
  alert.config.webhook_attempts = attempts;
  sender.post(alert);
  return waitForResult(metrics, result);
}

TEST(WebhookSender, DeliversOnTheFirst2xx) {
  Receiver receiver({200});
  Metrics metrics;
  ASSERT_TRUE(deliver(receiver, metrics, 3, "delivered")) << metrics.render();
  EXPECT_EQ(receiver.count(), 1u);
  EXPECT_EQ(json::parse(receiver.body(0))["rule"], "error_rate");
}

TEST(WebhookSender, RetriesA503ThenDelivers) {
  Receiver receiver({503, 200});
  Metrics metrics;
  ASSERT_TRUE(deliver(receiver, metrics, 3, "delivered")) << metrics.render();
  ASSERT_EQ(receiver.count(), 2u);
  EXPECT_EQ(receiver.body(0), receiver.body(1));
}

TEST(WebhookSender, A400IsFinal) {
  Receiver receiver({400});
  Metrics metrics;
  ASSERT_TRUE(deliver(receiver, metrics, 3, "failed")) << metrics.render();
  EXPECT_EQ(receiver.count(), 1u);
}

TEST(WebhookSender, GivesUpAfterEveryAttempt) {
  Receiver receiver({500});
  Metrics metrics;
  ASSERT_TRUE(deliver(receiver, metrics, 2, "failed")) << metrics.render();
  EXPECT_EQ(receiver.count(), 2u);
}

TEST(WebhookSender, NobodyListeningFails) {
  Metrics metrics;
  WebhookSender sender(metrics, {"http://127.0.0.1:"});
  AlertNotice alert = sampleAlert("http://127.0.0.1:1/hook");
  alert.config.webhook_attempts = 1;
  sender.post(alert);
  ASSERT_TRUE(waitForResult(metrics, "failed")) << metrics.render();
}

}  // namespace
}  // namespace flotilla::coordinator
