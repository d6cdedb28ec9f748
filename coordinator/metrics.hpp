// The coordinator's metrics, rendered in the Prometheus text format at /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace flotilla::coordinator {

class Metrics {
 public:
  // Counters, safe from any thread.
  void frameReceived(const std::string& type);
  void frameDropped(const std::string& reason);
  void staleResult() { stale_results_++; }
  void commit(bool ok) { ok ? commits_++ : commit_failures_++; }
  // Deployment changes made durable by one commit: each stage result it records, or one.
  void transitions(uint64_t n) { transitions_ += n; }
  // The store's running total of bytes written (Store::bytesWritten), after each flush.
  void setStoreWrittenBytes(uint64_t bytes) { store_written_bytes_ = bytes; }
  void deploymentSubmitted() { submitted_++; }
  void planRefused() { plans_refused_++; }
  void httpRequest(int status);
  // Alerts recorded, and what became of their webhook POSTs ("delivered", "failed", "dropped").
  void alertRaised(const std::string& rule);
  void webhook(const std::string& result);
  // HTTP connections cut by the abuse limits ("header_deadline", "per_client"), and requests
  // refused by them ("rate_limited", "streams_full").
  void httpConnectionCut(const std::string& reason);
  void httpRefused(const std::string& reason);
  void setHttpConnections(int64_t open) { http_connections_ = open; }
  void setHttpStreams(int64_t open) { http_streams_ = open; }

  // Gauges, set by the engine.
  void setGauges(std::map<std::string, int64_t> deployments_by_state,
                 std::map<std::string, int64_t> agents_by_state, uint64_t epoch);

  // Incident freezes, by environment ("" = the whole fleet): whether one is active. Every
  // environment a freeze ever named stays listed (0 once lifted); the fleet's always is.
  void setFreezes(std::map<std::string, bool> active_by_environment);

  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> frames_received_;
  std::map<std::string, uint64_t> frames_dropped_;
  std::map<int, uint64_t> http_requests_;
  std::map<std::string, uint64_t> alerts_;
  std::map<std::string, uint64_t> webhooks_;
  std::map<std::string, uint64_t> http_cut_;
  std::map<std::string, uint64_t> http_refused_;
  std::atomic<int64_t> http_connections_{0};
  std::atomic<int64_t> http_streams_{0};
  std::map<std::string, int64_t> deployments_by_state_;
  std::map<std::string, int64_t> agents_by_state_;
  uint64_t epoch_ = 0;
  std::map<std::string, bool> freezes_;
  std::atomic<uint64_t> stale_results_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> transitions_{0};
  std::atomic<uint64_t> store_written_bytes_{0};
  std::atomic<uint64_t> commit_failures_{0};
  std::atomic<uint64_t> submitted_{0};
  std::atomic<uint64_t> plans_refused_{0};
};

}  // namespace flotilla::coordinator
