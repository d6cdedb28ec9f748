#include "coordinator/webhook.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/http_client.hpp"
#include "common/logging.hpp"
#include "common/time_format.hpp"

namespace flotilla::coordinator {

using namespace std::chrono_literals;

WebhookSender::WebhookSender(Metrics& metrics, std::vector<std::string> allow)
    : metrics_(metrics), allow_(std::move(allow)) {
  thread_ = std::thread([this] { loop(); });
}

bool WebhookSender::allowed(const std::string& url, const std::vector<std::string>& allow) {
  for (const auto& prefix : allow) {
    if (prefix.empty() || url.compare(0, prefix.size(), prefix) != 0) continue;
    // "https://hooks.example.com" must not let "https://hooks.example.com.evil.net" through.
    // A prefix that ends in '/' or ':' (any port of a host) says where it ends itself.
    if (prefix.back() == '/' || prefix.back() == ':' || url.size() == prefix.size()) return true;
    const char next = url[prefix.size()];
    if (next == '/' || next == '?' || next == '#') return true;
  }
  return false;
}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (!queue_.empty()) {
      spdlog::warn("stopping: {} alert webhook(s) not sent", queue_.size());
      for (size_t i = 0; i < queue_.size(); ++i) metrics_.webhook("dropped");
      queue_.clear();
    }
  }
  wake_.notify_all();
  thread_.join();
}

void WebhookSender::post(const AlertNotice& alert) {
  if (!allowed(alert.config.webhook, allow_)) {
    metrics_.webhook("refused");
    spdlog::warn("alert webhook {} refused: not under any --webhook-allow prefix",
                 common::loggable(alert.config.webhook, 200));
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    if (queue_.size() >= kMaxQueued) {
      metrics_.webhook("dropped");
      spdlog::warn("alert webhook queue full ({}): dropped the alert for {} on {}", kMaxQueued,
                   alert.rule, alert.cluster);
      return;
    }
    queue_.push_back(alert);
  }
  wake_.notify_one();
}

std::string WebhookSender::body(const AlertNotice& a) {
  const std::string text = "flotilla: " + a.service + " " + a.version + " on " + a.cluster +
                           " (wave " + a.wave + ", " + a.deployment_id + "): " + a.message;
  const nlohmann::json out = {
      {"text", text},
      {"id", a.deployment_id + "/" + a.stage + "/" + a.rule},
      {"deployment", a.deployment_id},
      {"service", a.service},
      {"version", a.version},
      {"cluster", a.cluster},
      {"wave", a.wave},
      {"stage", a.stage},
      {"rule", a.rule},
      {"value", a.value},
      {"threshold", a.threshold},
      {"baseline", a.baseline},
      {"at", common::formatRfc3339(common::SystemTime(std::chrono::milliseconds(a.at_ms)))}};
  // Agent-supplied text may hold invalid UTF-8: replace rather than throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void WebhookSender::loop() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    AlertNotice alert = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    deliver(alert);
    lock.lock();
  }
}

void WebhookSender::deliver(const AlertNotice& alert) {
  const std::string payload = body(alert);
  const uint32_t attempts = std::max<uint32_t>(1, alert.config.webhook_attempts);
  auto backoff = std::chrono::milliseconds(1s);
  for (uint32_t attempt = 1; attempt <= attempts; ++attempt) {
    auto reply = common::httpPost(alert.config.webhook, payload, "application/json",
                                  alert.config.webhook_timeout);
    std::string why;
    if (reply.ok() && reply->status >= 200 && reply->status < 300) {
      metrics_.webhook("delivered");
      spdlog::info("alert webhook delivered: {} on {} (attempt {})", alert.rule, alert.cluster,
                   attempt);
      return;
    }
    if (reply.ok()) {
      why = "HTTP " + std::to_string(reply->status);
      const bool final = reply->status >= 400 && reply->status < 500 && reply->status != 408 &&
                         reply->status != 429;
      if (final) attempt = attempts;  // the receiver refuses this body: retrying will not help
    } else {
      why = reply.status().message();
    }
    spdlog::warn("alert webhook attempt {}/{} for {} on {} failed: {}", attempt, attempts,
                 alert.rule, alert.cluster, why);
    if (attempt == attempts) break;
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, backoff, [this] { return stop_; })) {
      metrics_.webhook("dropped");
      return;
    }
    backoff *= 2;
  }
  metrics_.webhook("failed");
}

}  // namespace flotilla::coordinator
