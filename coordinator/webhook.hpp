// Posts recorded alerts to the plan's webhook (alerts.webhook) on a thread of its own, so a
// slow or dead receiver never holds up the engine. The body is JSON with a Slack-compatible
// `text` field and the figures as fields of their own:
//
//   {"text": "flotilla: checkout 2.0.0 on prod-eu-1 (wave prod, d-…): error rate 0.200 is over
//             the 0.050 alert threshold (40 of 200)",
//    "id": "<deployment>/<stage>/<rule>",   // the same on every retry: receivers can dedupe
//    "deployment": "…", "service": "…", "version": "…", "cluster": "…", "wave": "…",
//    "stage": "…", "rule": "error_rate", "value": 0.2, "threshold": 0.05, "baseline": 0,
//    "at": "2026-11-27T04:00:00.000Z"}
//
// Each alert is tried up to alerts.webhook_attempts times (each bounded by
// alerts.webhook_timeout), 1 s, 2 s, 4 s... apart; a 2xx answer is delivered, a 4xx other than
// 408/429 is final (the receiver refuses it), anything else is retried. At most kMaxQueued
// alerts wait; more are dropped and counted. Delivery is best-effort: the alert event in the
// deployment's log is the record, the webhook only tells people. Pending alerts are not kept
// across a coordinator restart.
//
// A plan names the URL, but the coordinator decides where it may post: only to URLs under one of
// the prefixes given with --webhook-allow (none by default), so a plan, or a forged alert, cannot
// make the coordinator call an internal address (SSRF). A refused URL is counted
// (flotilla_webhook_posts_total{result="refused"}) and logged, never contacted.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/engine.hpp"
#include "coordinator/metrics.hpp"

namespace flotilla::coordinator {

class WebhookSender {
 public:
  static constexpr size_t kMaxQueued = 1000;

  // `allow`: URL prefixes ("https://hooks.example.com/deploys"); a URL matches a prefix that
  // ends at a path boundary ('/', '?', '#' or the URL's end), or one that ends in '/' or ':'.
  WebhookSender(Metrics& metrics, std::vector<std::string> allow);
  ~WebhookSender();  // stops: the alert being sent gets its current attempt, the rest are dropped
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Queues one alert; never blocks.
  void post(const AlertNotice& alert);

  // The JSON body for an alert (exposed for tests).
  static std::string body(const AlertNotice& alert);
  static bool allowed(const std::string& url, const std::vector<std::string>& allow);

 private:
  void loop();
  // One alert, every attempt; false when stopping cut it short.
  void deliver(const AlertNotice& alert);

  Metrics& metrics_;
  const std::vector<std::string> allow_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<AlertNotice> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace flotilla::coordinator
