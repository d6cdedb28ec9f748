// Prometheus text rendering of the coordinator's metrics.
#include "coordinator/metrics.hpp"

#include <sstream>

namespace flotilla::coordinator {

void Metrics::frameReceived(const std::string& type) {
  std::lock_guard<std::mutex> lock(mu_);
  frames_received_[type]++;
}

void Metrics::frameDropped(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  frames_dropped_[reason]++;
}

void Metrics::httpRequest(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  http_requests_[status]++;
}

void Metrics::alertRaised(const std::string& rule) {
  std::lock_guard<std::mutex> lock(mu_);
  alerts_[rule]++;
}

void Metrics::webhook(const std::string& result) {
  std::lock_guard<std::mutex> lock(mu_);
  webhooks_[result]++;
}

void Metrics::httpConnectionCut(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  http_cut_[reason]++;
}

void Metrics::httpRefused(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  http_refused_[reason]++;
}

void Metrics::setGauges(std::map<std::string, int64_t> deployments_by_state,
                        std::map<std::string, int64_t> agents_by_state, uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  deployments_by_state_ = std::move(deployments_by_state);
  agents_by_state_ = std::move(agents_by_state);
  epoch_ = epoch;
}

void Metrics::setFreezes(std::map<std::string, bool> active_by_environment) {
  std::lock_guard<std::mutex> lock(mu_);
  freezes_ = std::move(active_by_environment);
}

namespace {

// A label value in the text format: backslash, double quote and newline escaped.
std::string labelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string Metrics::render() const {
  std::ostringstream out;
  auto header = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  std::lock_guard<std::mutex> lock(mu_);
  header("flotilla_frames_received_total", "counter", "Agent frames decoded, by message type.");
  for (const auto& [k, v] : frames_received_) {
    out << "flotilla_frames_received_total{type=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_frames_dropped_total", "counter",
         "Agent frames dropped (malformed, unexpected or unknown sender), by reason.");
  for (const auto& [k, v] : frames_dropped_) {
    out << "flotilla_frames_dropped_total{reason=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_stale_results_total", "counter",
         "Stage results that matched nothing in flight (duplicates, late answers).");
  out << "flotilla_stale_results_total " << stale_results_.load() << '\n';
  header("flotilla_store_commits_total", "counter",
         "Deployment changes committed (one per deployment per loop turn at most; the turn's "
         "results for it are one commit).");
  out << "flotilla_store_commits_total " << commits_.load() << '\n';
  header("flotilla_transitions_total", "counter",
         "Deployment transitions recorded: each stage result, and each other change.");
  out << "flotilla_transitions_total " << transitions_.load() << '\n';
  header("flotilla_store_written_bytes_total", "counter",
         "Bytes of records written to the store (a change rewrites only the clusters it touched).");
  out << "flotilla_store_written_bytes_total " << store_written_bytes_.load() << '\n';
  header("flotilla_store_commit_failures_total", "counter", "Deployment writes that failed.");
  out << "flotilla_store_commit_failures_total " << commit_failures_.load() << '\n';
  header("flotilla_deployments_submitted_total", "counter", "Plans accepted.");
  out << "flotilla_deployments_submitted_total " << submitted_.load() << '\n';
  header("flotilla_plans_refused_total", "counter", "Plans refused at submission.");
  out << "flotilla_plans_refused_total " << plans_refused_.load() << '\n';
  header("flotilla_alerts_total", "counter", "Alerts raised by agents and recorded, by rule.");
  for (const auto& [k, v] : alerts_) {
    out << "flotilla_alerts_total{rule=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_http_connections_cut_total", "counter",
         "HTTP connections shut by the abuse limits, by reason (header_deadline: no whole "
         "request head in time; per_client: over the per-client connection cap).");
  for (const auto& [k, v] : http_cut_) {
    out << "flotilla_http_connections_cut_total{reason=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_http_requests_refused_total", "counter",
         "HTTP requests refused by the abuse limits, by reason (rate_limited: 429; "
         "streams_full: 503).");
  for (const auto& [k, v] : http_refused_) {
    out << "flotilla_http_requests_refused_total{reason=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_http_connections", "gauge", "Open HTTP API connections (last sweep).");
  out << "flotilla_http_connections " << http_connections_.load() << '\n';
  header("flotilla_http_event_streams", "gauge", "Open event streams.");
  out << "flotilla_http_event_streams " << http_streams_.load() << '\n';
  header("flotilla_webhook_posts_total", "counter",
         "Alert webhook POSTs, by result (delivered, failed after every attempt, dropped).");
  for (const auto& [k, v] : webhooks_) {
    out << "flotilla_webhook_posts_total{result=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_http_requests_total", "counter", "HTTP API requests, by status code.");
  for (const auto& [k, v] : http_requests_) {
    out << "flotilla_http_requests_total{code=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_deployments", "gauge", "Deployments known, by state.");
  for (const auto& [k, v] : deployments_by_state_) {
    out << "flotilla_deployments{state=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_agents", "gauge", "Agents known, by state.");
  for (const auto& [k, v] : agents_by_state_) {
    out << "flotilla_agents{state=\"" << k << "\"} " << v << '\n';
  }
  header("flotilla_freeze_active", "gauge",
         "1 while an incident freeze is active: scope=\"fleet\" for the whole fleet, "
         "scope=\"environment\" with the environment frozen (0 once lifted).");
  for (const auto& [env, active] : freezes_) {
    out << "flotilla_freeze_active{scope=\"" << (env.empty() ? "fleet" : "environment")
        << "\",environment=\"" << labelValue(env) << "\"} " << (active ? 1 : 0) << '\n';
  }
  header("flotilla_epoch", "gauge", "This coordinator run's epoch.");
  out << "flotilla_epoch " << epoch_ << '\n';
  return out.str();
}

}  // namespace flotilla::coordinator
