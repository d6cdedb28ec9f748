// flotilla-bench-rollback: how long a bad version hurts before Flotilla has taken it back out.
//
// Per run: a coordinator, three agents (one cluster each, three waves), one real HAProxy per
// cluster in front of flotilla-demo-service replicas (process driver), a good 1.0.0 everywhere,
// then traffic through every HAProxy and a bad 2.0.0 (20% of its answers are 500) rolled out as
// a canary [10, 50, 100] with a 2 s pause. Measured (not asserted):
//   (a) from the first 5xx a client saw (the sending time of the first request answered with
//       a 5xx) to every cluster answering only 1.0.0 again;
//   (b) from the submission to the deployment being rolled_back (the coordinator's event times);
// and where (a) goes: first 5xx -> the failed analysis, the failed analysis -> back on 1.0.0.
//
// "Answering only 1.0.0" is judged from real answers through each HAProxy: a sampler sends one
// request every 10 ms per cluster, on top of the load (two clients per cluster, at most one
// request each per 8 ms). A cluster is back at the first answer after its last answer that was
// not a 200 from 1.0.0; the answers keep coming for a while after rolled_back to confirm it.
// While the canary has 10% of the requests, that estimate is early by the gap between two
// canary answers (~30 ms at this load), so each HAProxy's server table is also read every
// 10 ms: a cluster is back once every server it sends requests to is a 1.0.0 replica.
//
// Reuses the test-support library's process fleet (tests/support/service_fleet.hpp: processes,
// HAProxy, traffic); it is not a test and ctest never runs it. `bench/run` builds and runs it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/service_fleet.hpp"

namespace flotilla::bench {
namespace {

using namespace std::chrono_literals;
using support::Answer;
using support::CommandResult;
using support::Haproxy;
using support::json;
using support::SystemTime;
using support::TrafficGenerator;

constexpr char kName[] = "rollback";
constexpr char kGood[] = "1.0.0";
constexpr char kBad[] = "2.0.0";
constexpr auto kSamplePace = 10ms;
constexpr auto kTableEvery = 10ms;
// Answers keep coming this long after rolled_back, so that "back on 1.0.0" is confirmed by a
// tail of good answers on every cluster.
constexpr auto kConfirmFor = 1500ms;
constexpr size_t kMinAnswersBeforeRollout = 50;

// Three clusters in three waves (staging-eu, prod-eu-1, prod-us-1); the bad version's replicas
// answer 20% of their requests with a 500.
const support::ServiceShape& kClusters = support::kThreeWaves;
constexpr char kMetrics[] = "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, min_requests: 20}";

// What one run measured, in milliseconds.
struct Measured {
  double first_bad_to_old = 0;        // (a), from answers
  double first_bad_to_old_table = 0;  // (a), from the HAProxy server tables
  double submit_to_rolled_back = 0;   // (b)
  double first_bad_to_verdict = 0;
  double verdict_to_old_table = 0;
  double verdict_to_rolled_back = 0;
  size_t bad_answers = 0;
  size_t answers = 0;
};

// One reading of a cluster's HAProxy server table.
struct TableSample {
  SystemTime at;
  bool only_old = false;  // every server taking requests is a 1.0.0 replica (and there is one)
};

// Reads every cluster's server table every kTableEvery until stopped.
class TableSampler {
 public:
  // `old_ports`: per cluster, the ports of its 1.0.0 replicas.
  TableSampler(std::map<std::string, Haproxy*> haproxies,
               std::map<std::string, std::set<int>> old_ports)
      : haproxies_(std::move(haproxies)), old_ports_(std::move(old_ports)) {}
  ~TableSampler() { stop(); }

  void start() {
    thread_ = std::thread([this] {
      auto next = std::chrono::steady_clock::now();
      while (!stop_) {
        for (const auto& [cluster, haproxy] : haproxies_) {
          auto servers = haproxy->servers();
          if (!servers) continue;  // no answer: no reading
          size_t serving = 0;
          size_t old = 0;
          for (const auto& server : *servers) {
            if (!server.serving()) continue;
            ++serving;
            old += old_ports_[cluster].count(server.port);
          }
          samples_[cluster].push_back(
              TableSample{std::chrono::system_clock::now(), serving > 0 && old == serving});
        }
        next += kTableEvery;
        std::this_thread::sleep_until(next);
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Read only once stopped.
  const std::map<std::string, std::vector<TableSample>>& samples() const { return samples_; }

 private:
  std::map<std::string, Haproxy*> haproxies_;
  std::map<std::string, std::set<int>> old_ports_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<std::string, std::vector<TableSample>> samples_;
};

double millisBetween(SystemTime from, SystemTime to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// The time of the first event of `type`.
std::optional<SystemTime> eventTime(const json& events, const std::string& type) {
  for (const auto& e : events) {
    if (e.value("type", "") == type) return support::parseRfc3339(e.value("time", ""));
  }
  return std::nullopt;
}

// The process fleet fixture, driven by hand: one object per run (its own temp dir, ports,
// processes).
class RollbackRun : public support::ServiceFleetTest {
 public:
  RollbackRun() = default;
  ~RollbackRun() override { finish(); }
  void TestBody() override {}

  // Runs the scenario; nullopt (with the reason printed) when it did not go as intended.
  std::optional<Measured> run() {
    SetUp();
    set_up_ = true;
    if (HasFatalFailure()) return fail("set-up failed (temp dir, free ports)");
    startClusters(kClusters);
    if (HasFatalFailure()) return fail("the coordinator, an HAProxy or an agent did not start");
    deployBaseline(90s);
    if (HasFatalFailure()) return fail("the baseline did not succeed");

    std::map<std::string, Haproxy*> haproxies;
    std::map<std::string, std::set<int>> old_ports;
    for (const auto& c : kClusters.clusters) {
      haproxies[c.cluster] = &haproxy(c.cluster);
      old_ports[c.cluster] = support::portsOf(baseline_replicas_[c.cluster]);
    }
    tables_ = std::make_unique<TableSampler>(haproxies, old_ports);
    tables_->start();
    startTraffic();  // the load
    if (HasFatalFailure()) return fail("no traffic through HAProxy");
    for (const auto& c : kClusters.clusters) {
      samplers_[c.cluster] =
          std::make_unique<TrafficGenerator>(haproxy(c.cluster).url(), 1, kSamplePace);
      samplers_[c.cluster]->start();
    }
    const bool flowing = waitUntil("samples on every cluster", [&] {
      for (const auto& [name, sampler] : samplers_) {
        if (sampler->count() < kMinAnswersBeforeRollout) return false;
      }
      return true;
    });
    if (!flowing) return fail("no traffic through HAProxy");

    const support::ProcessPlan bad =
        processPlan({.version = kBad,
                     .command_extra = support::onlyFor(kBad, "--error-rate 0.2"),
                     .strategy = support::canarySteps("2s"),
                     .metrics = kMetrics});
    const std::string id = submitPlan("bad.yaml", bad.yaml());
    if (id.empty()) return fail("the bad plan was refused");
    CommandResult wait = cli({"wait", id, "--timeout", "90s"}, 100s);
    std::this_thread::sleep_for(kConfirmFor);
    tables_->stop();
    std::map<std::string, std::vector<Answer>> answers = stopTraffic();
    for (auto& [cluster, sampler] : samplers_) {
      sampler->stop();
      auto samples = sampler->answers();
      answers[cluster].insert(answers[cluster].end(), samples.begin(), samples.end());
      std::stable_sort(answers[cluster].begin(), answers[cluster].end(),
                       [](const Answer& a, const Answer& b) { return a.sent < b.sent; });
    }
    if (stateOf(id) != "rolled_back") {
      return fail("the bad version ended " + stateOf(id) + ", not rolled_back: " + wait.out);
    }

    const json ev = events(id);
    const auto submitted = eventTime(ev, "deployment.submitted");
    const auto rolled_back = eventTime(ev, "deployment.rolled_back");
    const auto verdict = eventTime(ev, "stage.failed");  // the failed analysis
    if (!submitted || !rolled_back || !verdict) return fail("events missing: " + ev.dump(1));

    Measured m;
    m.submit_to_rolled_back = millisBetween(*submitted, *rolled_back);
    std::optional<SystemTime> first_bad;
    std::optional<SystemTime> all_back;
    for (const auto& [cluster, list] : answers) {
      m.answers += list.size();
      std::optional<size_t> last_off;  // the last answer that was not a 200 from 1.0.0
      for (size_t i = 0; i < list.size(); ++i) {
        const Answer& a = list[i];
        if (a.status >= 500) {
          ++m.bad_answers;
          if (!first_bad || a.sent < *first_bad) first_bad = a.sent;
        }
        if (a.failed() || a.version != kGood) last_off = i;
      }
      if (!last_off) continue;  // this cluster answered 1.0.0 throughout
      if (*last_off + 1 >= list.size()) {
        return fail(cluster + " never answered 1.0.0 only again");
      }
      const SystemTime back = list[*last_off + 1].sent;
      if (!all_back || back > *all_back) all_back = back;
    }
    if (!first_bad) return fail("no client ever saw a 5xx from " + std::string(kBad));
    if (!all_back) return fail("no cluster ever answered anything but 1.0.0");

    std::optional<SystemTime> tables_back;
    for (const auto& [cluster, samples] : tables_->samples()) {
      std::optional<size_t> last_off;
      for (size_t i = 0; i < samples.size(); ++i) {
        if (!samples[i].only_old) last_off = i;
      }
      if (!last_off) continue;
      if (*last_off + 1 >= samples.size()) {
        return fail(cluster + "'s HAProxy never sent requests to 1.0.0 only again");
      }
      const SystemTime back = samples[*last_off + 1].at;
      if (!tables_back || back > *tables_back) tables_back = back;
    }
    if (!tables_back) return fail("no HAProxy ever sent a request to anything but 1.0.0");

    m.first_bad_to_old = millisBetween(*first_bad, *all_back);
    m.first_bad_to_old_table = millisBetween(*first_bad, *tables_back);
    m.first_bad_to_verdict = millisBetween(*first_bad, *verdict);
    m.verdict_to_old_table = millisBetween(*verdict, *tables_back);
    m.verdict_to_rolled_back = millisBetween(*verdict, *rolled_back);
    return m;
  }

  void finish() {
    if (tables_) tables_->stop();
    for (auto& [name, t] : samplers_) t->stop();
    if (set_up_) TearDown();  // the load, HAProxy, the agents and the coordinator
    set_up_ = false;
  }

 private:
  std::optional<Measured> fail(const std::string& why) {
    std::cerr << "[bench] run failed: " << why << "\n";
    dumpLogs();
    return std::nullopt;
  }

  bool set_up_ = false;
  std::map<std::string, std::unique_ptr<TrafficGenerator>> samplers_;
  std::unique_ptr<TableSampler> tables_;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

struct Row {
  std::string metric;
  std::vector<double> values;
};

void printTable(const std::vector<Row>& rows, bool summary) {
  if (summary) {
    // One tab-separated line a metric, tagged for bench/run.
    for (const auto& r : rows) {
      std::printf("BENCH\t%s\t%s\t%zu\t%.0f\t%.0f\t%.0f\n", kName, (r.metric + " (ms)").c_str(),
                  r.values.size(), *std::min_element(r.values.begin(), r.values.end()),
                  median(r.values), *std::max_element(r.values.begin(), r.values.end()));
    }
    return;
  }
  std::printf("%-44s %5s %9s %9s %9s\n", "metric (ms)", "runs", "min", "median", "max");
  for (const auto& r : rows) {
    std::printf("%-44s %5zu %9.0f %9.0f %9.0f\n", r.metric.c_str(), r.values.size(),
                *std::min_element(r.values.begin(), r.values.end()), median(r.values),
                *std::max_element(r.values.begin(), r.values.end()));
  }
}

int usage(const char* self, int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s [--runs N] [--summary]\n"
               "  --runs N     repeat the scenario N times (default 3)\n"
               "  --summary    print only tab-separated result lines (for bench/run)\n",
               self);
  return code;
}

int runBench(int argc, char** argv) {
  int runs = 3;
  bool summary = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
      if (runs < 1) return usage(argv[0], 2);
    } else if (arg.rfind("--runs=", 0) == 0) {
      runs = std::atoi(arg.c_str() + 7);
      if (runs < 1) return usage(argv[0], 2);
    } else if (arg == "--summary") {
      summary = true;
    } else if (arg == "--help" || arg == "-h") {
      return usage(argv[0], 0);
    } else {
      return usage(argv[0], 2);
    }
  }

  std::vector<Row> rows = {
      {"(a) first 5xx -> only 1.0.0 answers", {}},    {"(a') first 5xx -> HAProxy: only 1.0.0", {}},
      {"(b) submission -> rolled_back", {}},          {"first 5xx -> failed analysis", {}},
      {"failed analysis -> HAProxy: only 1.0.0", {}}, {"failed analysis -> rolled_back", {}}};
  for (int i = 1; i <= runs; ++i) {
    std::optional<Measured> m;
    {
      RollbackRun one;
      m = one.run();
    }
    if (!m) {
      std::cerr << "[bench] " << kName << ": run " << i << " of " << runs << " failed\n";
      return 1;
    }
    rows[0].values.push_back(m->first_bad_to_old);
    rows[1].values.push_back(m->first_bad_to_old_table);
    rows[2].values.push_back(m->submit_to_rolled_back);
    rows[3].values.push_back(m->first_bad_to_verdict);
    rows[4].values.push_back(m->verdict_to_old_table);
    rows[5].values.push_back(m->verdict_to_rolled_back);
    std::fprintf(
        stderr, "[bench] %s run %d/%d: (a) %.0f ms, (b) %.0f ms; %zu answers, %zu of them 5xx\n",
        kName, i, runs, m->first_bad_to_old, m->submit_to_rolled_back, m->answers, m->bad_answers);
  }
  printTable(rows, summary);
  return 0;
}

}  // namespace
}  // namespace flotilla::bench

int main(int argc, char** argv) { return flotilla::bench::runBench(argc, argv); }
