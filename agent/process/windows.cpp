#include "agent/process/windows.hpp"

#include <cstdio>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/process/replica_process.hpp"
#include "common/http_client.hpp"

namespace flotilla::agent {

using common::httpGet;
using common::Status;
using common::StatusOr;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

SetReading readSet(StepContext& ops, const ReplicaSet& set, Millis timeout, bool scrape) {
  SetReading out;
  for (const Replica& r : set.replicas) {
    Reading reading;
    auto reply = scrape ? httpGet(url(r.port, "/metrics"), timeout)
                        : StatusOr<common::HttpReply>(Status::NotFound(""));
    reading.at = Clock::now();
    if (!scrape) {
      // Only /proc below.
    } else if (!reply.ok()) {
      ops.say("scrape of " + endpoint(r.port) + " failed: " + reply.status().message());
    } else if (reply->status != 200) {
      ops.say("scrape of " + endpoint(r.port) + " failed: HTTP " + std::to_string(reply->status));
    } else {
      auto samples = parsePrometheusText(reply->body);
      if (samples.ok()) {
        reading.samples = std::move(*samples);
      } else {
        ops.say("scrape of " + endpoint(r.port) + ": " + samples.status().message());
      }
    }
    auto proc = readProcStat(r.pid);
    if (proc.ok()) reading.proc = *proc;
    out[r.port] = std::move(reading);
  }
  return out;
}

SetWindow windowOf(StepContext& ops, const SetReading& before, const SetReading& after) {
  SetWindow out;
  std::vector<WindowStats> per;
  double cpu = 0;
  bool cpu_known = false;
  for (const auto& [port, b] : before) {
    auto it = after.find(port);
    if (it == after.end()) continue;
    const Reading& a = it->second;
    if (b.samples && a.samples) {
      auto w = computeWindowStats(*b.samples, *a.samples, a.at - b.at);
      if (w.ok()) {
        per.push_back(*w);
      } else {
        ops.say("metrics of " + endpoint(port) + ": " + w.status().message());
      }
    }
    if (b.proc && a.proc) {
      cpu += cpuShare(*b.proc, *a.proc, a.at - b.at);
      cpu_known = true;
      out.rss_bytes += a.proc->rss_bytes;
    }
  }
  out.replicas = per.size();
  out.stats = aggregate(per);
  if (cpu_known) out.cpu = cpu;
  return out;
}

std::string describe(const std::string& version, const SetWindow& w) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s: %llu requests (%.1f/s) on %zu replicas, error rate %.3f",
                version.c_str(), static_cast<unsigned long long>(w.stats.requests),
                w.stats.request_rate, w.replicas, w.stats.error_rate);
  std::string out = buf;
  if (w.stats.latency_p95) {
    std::snprintf(buf, sizeof(buf), ", p95 %.1f ms", *w.stats.latency_p95 * 1000);
    out += buf;
  }
  if (w.cpu) {
    std::snprintf(buf, sizeof(buf), ", cpu %.1f%% of a core, rss %.1f MiB", *w.cpu * 100,
                  static_cast<double>(w.rss_bytes) / (1 << 20));
    out += buf;
  }
  if (w.stats.restarts > 0) out += ", " + std::to_string(w.stats.restarts) + " restarted";
  return out;
}

}  // namespace flotilla::agent
