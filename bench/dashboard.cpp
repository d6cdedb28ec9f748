// flotilla-bench-dashboard: the web dashboard as a person sees it, in Debian's chromium
// (headless, driven by playwright-core through bench/dashboard_page.mjs, a child process), on a
// real coordinator with N = 1,000 and 10,000 simulated agents (flotilla-sim-agents). For each N:
//   live   a deployment of N clusters in three waves (1%, the next 10%, the rest; the first one
//          waits for an approval) is open on the deployment page, logged in as a viewer. Once
//          the page shows the wave waiting: one event at a time, a deployer pauses and resumes
//          it 25 times, 300 ms apart (50 single events on a quiet page); then an approver
//          approves the wave and the rollout runs to the end (3N+ events in bursts). For every
//          event committed after the page opened: the time the page showed it
//          (window.flotillaEventTimes: performance.timeOrigin + performance.now(), wall clock)
//          minus the event's commit time (its `time` in GET .../events: the engine's clock when
//          it committed the change, in milliseconds; the group commit's fsync follows in the same
//          loop turn). p50 and p99 of each phase. A plain SSE client in this process reads the
//          same stream and splits that time: committed -> arrived here (the server's share),
//          arrived -> shown (the browser's; both share the CPU, so the split is approximate).
//   load   the finished deployment's page opened afresh (a new browser context each run: no
//          cache, a new session), from navigation start to the page rendered (state and every
//          wave drawn), measured in the page with the Performance API, and to the next frame
//          painted.
// Measured, never asserted; bench/run runs it with --summary --quick.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "common/http_client.hpp"
#include "common/sse.hpp"
#include "tests/support/wait.hpp"

#ifndef FLOTILLA_SOURCE_DIR
#error "FLOTILLA_SOURCE_DIR must be defined by CMake"
#endif

namespace flotilla::bench {
namespace {

using namespace std::chrono_literals;

constexpr char kUsage[] =
    "usage: flotilla-bench-dashboard [--agents 1000,10000] [--runs N] [--quick] [--summary]\n"
    "                                [--keep]\n"
    "  --runs N   page loads per fleet size (default 10; --quick 3); the live figure is one\n"
    "             rollout per size, every event of it\n"
    "  --keep     keep each fleet's work dir (coordinator, agents and browser logs) in /tmp\n"
    "Needs node and playwright-core: FLOTILLA_PLAYWRIGHT_DIR (a folder with node_modules), else\n"
    "integration/browser (npm ci there); chromium: CHROMIUM, else /usr/bin/chromium.\n";
constexpr int kAgentsPerProcess = 2500;
constexpr int kWaves = 3;
// Single events before the rollout: pause + resume, this many times, this far apart.
constexpr int kPacedCycles = 25;
constexpr auto kPacedGap = std::chrono::milliseconds(300);

// The first wave (1%) by name and waiting for an approval, the next 10% by name, the rest by
// label. Simulated agents run nothing: each step is answered at once.
std::string plan(int n) {
  const int canary = std::max(1, n / 100);
  const int early = std::max(1, n / 10);
  auto names = [](int from, int to) {
    std::string out;
    for (int i = from; i < to; ++i) out += (i == from ? "" : ", ") + simName(i);
    return out;
  };
  return "service: dashboard\nversion: \"1.0." + std::to_string(n) +
         "\"\ndriver: script\nsteps:\n  apply: \"true\"\n  rollback: \"true\"\n"
         "waves:\n"
         "  - name: canary\n    clusters: [" +
         names(0, canary) +
         "]\n    approval: required\n"
         "  - name: early\n    clusters: [" +
         names(canary, canary + early) +
         "]\n"
         "  - name: rest\n    selector: {fleet: bench}\n";
}

// The deployment's state from the list (a summary per deployment: cheap at any size, unlike
// the detail of 10,000 clusters).
std::string stateOf(CoordinatorProcess& c, const std::string& id) {
  auto r = c.get("/api/v1/deployments");
  json list = r.parsed();
  if (r.status != 200 || !list.is_object() || !list["deployments"].is_array()) return "";
  for (const auto& d : list["deployments"]) {
    if (d.value("id", "") == id) return d.value("state", "");
  }
  return "";
}

bool isFinal(const std::string& state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "cancelled";
}

// Every event of the deployment after `after`, page by page.
std::vector<json> eventsAfter(CoordinatorProcess& c, const std::string& id, int64_t after) {
  std::vector<json> out;
  while (true) {
    auto r = c.get("/api/v1/deployments/" + id + "/events?after=" + std::to_string(after));
    json page = r.parsed();
    if (r.status != 200 || !page.is_object() || !page["events"].is_array()) {
      std::cerr << "   events after " << after << ": " << r.status << " " << r.body << "\n";
      return out;
    }
    if (page["events"].empty()) return out;
    for (auto& e : page["events"]) {
      after = std::max<int64_t>(after, e.value("seq", int64_t{0}));
      out.push_back(std::move(e));
    }
  }
}

// A plain SSE client on the same stream as the page (libcurl, this process): when each event
// arrived here. Committed -> arrived is the server's share of the latency, arrived -> shown the
// browser's. Its thread ends when the stream does (the server ends it once the deployment is
// final, or the coordinator stops).
class StreamProbe {
 public:
  StreamProbe(const std::string& url, const std::string& token, const std::string& id,
              int64_t after) {
    thread_ = std::thread([this, url, token, id, after] {
      common::HttpClientOptions options;
      options.bearer_token = token;
      common::HttpClient client(options);
      common::HttpRequest request;
      request.url = url + "/api/v1/deployments/" + id + "/events?after=" + std::to_string(after);
      request.accept = "text/event-stream";
      common::SseParser parser;
      client.stream(request, "text/event-stream", [&](std::string_view chunk) {
        const double now = static_cast<double>(wallNs(std::chrono::system_clock::now())) / 1e6;
        connected_ = true;
        if (stop_) return false;
        return parser.feed(chunk, [&](const common::SseEvent& e) {
          json event = json::parse(e.data, nullptr, false);
          if (!event.is_object()) return true;
          std::lock_guard<std::mutex> lock(mutex_);
          arrived_.try_emplace(event.value("seq", int64_t{-1}), now);
          return true;
        });
      });
    });
  }
  // Waits for the stream's end; a stream still open ends at its next keep-alive (15 s).
  ~StreamProbe() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // The first bytes (the stream's `retry:` line) came.
  bool connected() const { return connected_; }
  std::map<int64_t, double> arrived() {
    std::lock_guard<std::mutex> lock(mutex_);
    return arrived_;
  }

 private:
  std::thread thread_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<int64_t, double> arrived_;  // seq -> wall-clock ms
};

// "ready {json}" / "result {json}" from the page script; null when it said something else or
// nothing in time.
json expectLine(LineChild& page, const std::string& word, std::chrono::milliseconds timeout) {
  auto line = page.readLine(timeout);
  if (!line || line->rfind(word + " ", 0) != 0) {
    std::cerr << "   the page script did not answer `" << word << "` in time"
              << (line ? ": " + *line : "") << "\n";
    return nullptr;
  }
  json j = json::parse(line->substr(word.size() + 1), nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

std::vector<std::string> nodeArgs(const std::string& mode, const std::string& url,
                                  const std::string& id) {
  return {"node", std::string(FLOTILLA_SOURCE_DIR) + "/bench/dashboard_page.mjs",
          mode,   "--url",
          url,    "--id",
          id};
}

void runSize(int n, int load_runs, bool keep, std::vector<Figure>& figures) {
  const std::string label = "N=" + std::to_string(n);
  std::cerr << "-- " << n << " clusters\n";
  const std::string dir = makeTempDir("dashboard");
  auto coordinator =
      CoordinatorProcess::start(dir, {"--heartbeat", "1s", "--agent-lost-after", "60s"});
  if (!coordinator) return;
  const std::string viewer = coordinator->makeToken("bench-viewer", "viewer");
  const std::string approver = coordinator->makeToken("bench-approver", "approver");
  const std::string deployer = coordinator->makeToken("bench-deployer", "deployer");
  if (viewer.empty() || approver.empty() || deployer.empty()) return;
  auto fleet = startFleet(coordinator->agents(), n, kAgentsPerProcess, {{"fleet", "bench"}}, dir,
                          std::chrono::milliseconds(60000 + 10 * n));
  if (fleet.empty()) {
    figures.push_back({"dashboard", "register " + label + ": not all registered", {}});
    return;
  }
  // The HTTP API's view of the agents (the one a plan is resolved against) follows the
  // engine's by a moment: submit once it has them all.
  if (!support::pollUntil(
          [&] {
            json agents = coordinator->get("/api/v1/agents").parsed();
            if (!agents.is_object() || !agents["agents"].is_array()) return false;
            int connected = 0;
            for (const auto& a : agents["agents"]) connected += a.value("state", "") == "connected";
            return connected == n;
          },
          60s, 200ms)) {
    std::cerr << "   the API never listed " << n << " connected agents\n";
    return;
  }
  std::cerr << "   " << n << " agents registered\n";

  const std::string id = coordinator->submit(plan(n));
  if (id.empty()) return;
  if (!support::pollUntil([&] { return stateOf(*coordinator, id) == "awaiting_approval"; },
                          std::chrono::milliseconds(30000 + 5 * n), 100ms)) {
    std::cerr << "   " << id << " never waited for its approval\n";
    return;
  }
  std::vector<json> before = eventsAfter(*coordinator, id, 0);
  const int64_t ready_seq = before.empty() ? 0 : before.back().value("seq", int64_t{0});
  const std::map<std::string, std::string> env = {{"FLOTILLA_BENCH_TOKEN", viewer}};
  const auto page_timeout = std::chrono::milliseconds(120000 + 20 * n);

  // ---- live: every event of the rollout, committed -> shown ----
  {
    std::vector<std::string> argv = nodeArgs("live", coordinator->url(), id);
    argv.insert(argv.end(), {"--ready-seq", std::to_string(ready_seq), "--timeout-ms",
                             std::to_string(page_timeout.count())});
    auto page = LineChild::start(argv, env, dir + "/page-live.log");
    if (!page) return;
    json ready = expectLine(*page, "ready", page_timeout);
    if (ready.is_null()) {
      std::cerr << "   see " << dir << "/page-live.log\n";
      keep = true;
    } else {
      StreamProbe probe(coordinator->url(), approver, id, ready_seq);
      if (!support::pollUntil([&] { return probe.connected(); }, 10s, 20ms)) {
        std::cerr << "   the SSE probe did not connect\n";
      }
      std::cerr << "   page open on " << id << " (" << ready.value("state", "") << ", clock skew "
                << ready.value("skew_ms", 0.0) << " ms)\n";
      // One event at a time: a deployer pauses and resumes the waiting deployment, each a
      // single event on an otherwise quiet page.
      for (int i = 0; i < kPacedCycles; ++i) {
        for (const char* verb : {"pause", "resume"}) {
          std::this_thread::sleep_for(kPacedGap);
          auto r = coordinator->post("/api/v1/deployments/" + id + "/" + verb,
                                     {{"reason", "dashboard bench"}}, deployer);
          if (r.status != 200) {
            std::cerr << "   " << verb << " refused (" << r.status << "): " << r.body << "\n";
            return;
          }
        }
      }
      std::vector<json> paced = eventsAfter(*coordinator, id, ready_seq);
      const int64_t paced_last = paced.empty() ? ready_seq : paced.back().value("seq", int64_t{0});
      std::cerr << "   " << paced.size() << " single events (pause, resume); approving the first"
                << " wave\n";
      auto approved = coordinator->post("/api/v1/deployments/" + id + "/approve",
                                        {{"wave", "canary"}}, approver);
      if (approved.status != 200) {
        std::cerr << "   approval refused (" << approved.status << "): " << approved.body << "\n";
        return;
      }
      auto started = std::chrono::steady_clock::now();
      std::string state;
      support::pollUntil(
          [&] {
            state = stateOf(*coordinator, id);
            return isFinal(state);
          },
          std::chrono::milliseconds(60000 + 30 * n), 200ms);
      std::cerr << "   " << id << " " << state << " after "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()
                << " s\n";
      std::vector<json> events = eventsAfter(*coordinator, id, ready_seq);
      const int64_t last = events.empty() ? ready_seq : events.back().value("seq", int64_t{0});
      page->writeLine("until " + std::to_string(last));
      json result = expectLine(*page, "result", page_timeout + 10s);
      // [0]: the single events, [1]: the rollout's.
      const std::string phase[2] = {"single", "rollout"};
      std::vector<Figure> latency, server, browser;
      for (const auto& p : phase) {
        latency.push_back(
            {"dashboard", "event committed -> shown, " + p + " " + label + " (ms)", {}});
        server.push_back(
            {"dashboard", "  committed -> SSE client, " + p + " " + label + " (ms)", {}});
        browser.push_back({"dashboard", "  SSE client -> shown, " + p + " " + label + " (ms)", {}});
      }
      const std::map<int64_t, double> arrived = probe.arrived();
      if (result.is_object() && result["times"].is_array()) {
        std::map<int64_t, double> shown;  // seq -> first time shown
        for (const auto& t : result["times"]) {
          shown.try_emplace(t.value("seq", int64_t{-1}), t.value("shownAt", 0.0));
        }
        size_t missing = 0;
        // Every event's times, for a closer look (kept with --keep).
        std::ofstream tsv(dir + "/events-" + std::to_string(n) + ".tsv");
        tsv << "seq\ttype\tcommitted_ms\tarrived_ms\tshown_ms\tlatency_ms\n" << std::fixed;
        for (const auto& e : events) {
          const int64_t seq = e.value("seq", int64_t{-1});
          const size_t k = seq <= paced_last ? 0 : 1;
          auto at = shown.find(seq);
          auto committed = support::parseRfc3339(e.value("time", ""));
          if (at == shown.end() || !committed) {
            ++missing;
            continue;
          }
          const double committed_ms = static_cast<double>(wallNs(*committed)) / 1e6;
          latency[k].values.push_back(at->second - committed_ms);
          auto came = arrived.find(seq);
          if (came != arrived.end()) {
            server[k].values.push_back(came->second - committed_ms);
            browser[k].values.push_back(at->second - came->second);
          }
          tsv << seq << "\t" << e.value("type", "") << "\t" << committed_ms << "\t"
              << (came != arrived.end() ? came->second : 0.0) << "\t" << at->second << "\t"
              << at->second - committed_ms << "\n";
        }
        std::cerr << "   " << events.size() << " events after the page opened, "
                  << latency[0].values.size() + latency[1].values.size() << " shown, " << missing
                  << " not shown (page: " << result.value("state", "") << ", "
                  << result.value("dom_nodes", 0) << " DOM nodes, clock skew "
                  << result.value("skew_ms", 0.0) << " ms)\n";
        figures.push_back({"dashboard",
                           "events of the rollout " + label + " (count)",
                           {static_cast<double>(events.size() - paced.size())}});
        figures.push_back({"dashboard",
                           "events not shown " + label + " (count)",
                           {static_cast<double>(missing)}});
      }
      for (size_t k = 0; k < 2; ++k) {
        figures.push_back(latency[k]);
        figures.push_back(server[k]);
        figures.push_back(browser[k]);
      }
    }
  }

  // ---- load: the finished deployment's page, afresh each run ----
  {
    std::vector<std::string> argv = nodeArgs("load", coordinator->url(), id);
    argv.insert(argv.end(), {"--waves", std::to_string(kWaves), "--runs", std::to_string(load_runs),
                             "--timeout-ms", std::to_string(page_timeout.count())});
    auto page = LineChild::start(argv, env, dir + "/page-load.log");
    if (!page) return;
    json result = expectLine(*page, "result", page_timeout * load_runs + 30s);
    Figure rendered{"dashboard", "page load -> rendered " + label + " (ms)", {}};
    Figure painted{"dashboard", "page load -> painted " + label + " (ms)", {}};
    Figure dcl{"dashboard", "page load -> DOMContentLoaded " + label + " (ms)", {}};
    Figure slowest{"dashboard", "page load: slowest API call " + label + " (ms)", {}};
    if (result.is_object() && result["runs"].is_array()) {
      for (const auto& r : result["runs"]) {
        rendered.values.push_back(r.value("rendered_ms", 0.0));
        painted.values.push_back(r.value("painted_ms", 0.0));
        if (r["dom_content_loaded_ms"].is_number()) {
          dcl.values.push_back(r["dom_content_loaded_ms"].get<double>());
        }
        if (r["slowest_api"].is_object()) {
          slowest.values.push_back(r["slowest_api"].value("ms", 0.0));
          std::cerr << "   slowest API call " << r["slowest_api"].value("url", "") << ": "
                    << r["slowest_api"].value("ms", 0.0) << " ms (of " << r.value("api_requests", 0)
                    << " API calls)\n";
        }
      }
    } else {
      std::cerr << "   see " << dir << "/page-load.log\n";
      keep = true;
    }
    figures.push_back(rendered);
    figures.push_back(painted);
    figures.push_back(dcl);
    figures.push_back(slowest);
  }

  fleet.clear();
  coordinator.reset();
  if (keep) {
    std::cerr << "   kept " << dir << "\n";
  } else {
    removeTree(dir);
  }
}

}  // namespace
}  // namespace flotilla::bench

int main(int argc, char** argv) {
  using namespace flotilla::bench;
  // A page script that died must not take this program with it on the next write.
  ::signal(SIGPIPE, SIG_IGN);
  bool keep = false;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--keep") {
      keep = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  CommonArgs args = parseArgs(static_cast<int>(rest.size()), rest.data(), kUsage);
  if (args.sizes.empty()) args.sizes = {1000, 10000};
  const int load_runs = args.runs > 0 ? args.runs : (args.quick ? 3 : 10);
  std::vector<Figure> figures;
  for (int n : args.sizes) runSize(n, load_runs, keep, figures);
  printFigures(figures, args.summary);
  return 0;
}
