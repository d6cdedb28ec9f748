// flotilla-bench-scale: one real coordinator driven by 100, 1,000 and 10,000 simulated agents
// (flotilla-sim-agents, a few processes on this host), over the agent channel's NULL mechanism
// (--insecure) and over CurveZMQ, each with a fresh coordinator. For each fleet size N and
// mechanism:
//   enroll    (CURVE) one one-time enrollment token per cluster through the HTTP API, as admin;
//   register  every agent started -> every agent registered (with CURVE: its key pair made,
//             the handshake, and its enrollment by the token in its first register);
//   idle      the coordinator's CPU share (of one core; of it, its engine thread's and ZeroMQ's
//             I/O thread's) and resident memory while every agent heartbeats once a second and
//             nothing is deployed (from /proc/PID/stat, task/*/stat, status);
//   fan-out   one stage (apply) to all N agents in one wave: from the submission (POST) until
//             every result is durably recorded (the deployment's final `succeeded` transition,
//             whose commit time is its updated_at), repeated;
//   abort     all N agents hold their apply in flight, then one reports a failure: from the
//             moment it sent the failure until the last agent received its abort, and its
//             rollback command (receipt times taken by the simulated agents, same clock).
// Measured, never asserted; bench/run runs it with --summary.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "tests/support/wait.hpp"

namespace flotilla::bench {
namespace {

using namespace std::chrono_literals;

constexpr char kUsage[] =
    "usage: flotilla-bench-scale [--agents 100,1000,10000] [--runs N] [--quick] [--summary]\n"
    "                            [--mechanism null|curve|both] [--keep]\n"
    "  --quick      the fleet sizes with fewer repetitions (what bench/run uses)\n"
    "  --mechanism  the agent channel's: NULL (--insecure), CURVE, or both side by side\n"
    "               (default: both, NULL first at each size)\n"
    "  --keep       keep each fleet's work dir (coordinator and agent logs) in /tmp\n";
constexpr int kAgentsPerProcess = 2500;
// Clients asking for enrollment tokens at once (the coordinator answers each after its fsync;
// a few at once share one).
constexpr int kEnrollClients = 4;

std::string plan(const std::string& service, int run) {
  return "service: " + service + "\nversion: \"1.0." + std::to_string(run) +
         "\"\ndriver: script\nsteps:\n  apply: \"true\"\n  rollback: \"true\"\n"
         "waves:\n  - name: all\n    selector: {fleet: bench}\n";
}

int64_t sumStatAll(std::vector<std::unique_ptr<SimAgents>>& fleet, const std::string& key) {
  return sumStat(fleet, key);
}

bool askAll(std::vector<std::unique_ptr<SimAgents>>& fleet, const std::string& line) {
  for (auto& s : fleet) {
    auto a = s->ask(line);
    if (!a || *a != "ok") return false;
  }
  return true;
}

void runSize(int n, Mechanism mechanism, int fanout_runs, int abort_runs, bool quick, bool keep,
             std::vector<Figure>& figures) {
  std::string label = "N=" + std::to_string(n) + " " + mechanismName(mechanism);
  std::cerr << "-- " << n << " agents, " << mechanismName(mechanism) << "\n";
  std::string dir = makeTempDir("scale");
  auto coordinator =
      CoordinatorProcess::start(dir, {"--heartbeat", "1s", "--agent-lost-after", "60s"}, mechanism);
  if (!coordinator) return;
  SimSecurity security;
  if (mechanism == Mechanism::kCurve) {
    std::vector<std::string> clusters;
    for (int i = 0; i < n; ++i) clusters.push_back(simName(i));
    auto t0 = std::chrono::system_clock::now();
    security.enroll_tokens = coordinator->enroll(clusters, kEnrollClients);
    if (security.enroll_tokens.empty()) {
      figures.push_back({"scale", "enroll " + label + ": refused", {}});
      return;
    }
    double ms = millisSince(t0, std::chrono::system_clock::now());
    figures.push_back({"scale", "enroll tokens " + label + " (ms)", {ms}});
    std::cerr << "   " << n << " enrollment tokens in " << ms << " ms\n";
    security.coordinator_key = coordinator->publicKey();
  }
  auto started = std::chrono::system_clock::now();
  // bench/run (--quick) gives registration 90 s, so that a fleet the coordinator cannot take
  // in shows up as a figure rather than stalling the whole run.
  auto register_deadline = std::chrono::milliseconds(quick ? 90000 : 30000 + 30 * n);
  auto fleet = startFleet(coordinator->agents(), n, kAgentsPerProcess, {{"fleet", "bench"}}, dir,
                          register_deadline, security);
  if (fleet.empty()) {
    figures.push_back({"scale",
                       "register " + label + ": not all within " +
                           std::to_string(register_deadline.count() / 1000) + " s",
                       {}});
    std::cerr << "   logs kept in " << dir << "\n";
    return;
  }
  double register_ms = millisSince(started, std::chrono::system_clock::now());
  figures.push_back({"scale", "register " + label + " (ms)", {register_ms}});
  std::cerr << "   registered in " << register_ms << " ms (" << sumStat(fleet, "registers")
            << " registers sent, " << sumStat(fleet, "refused") << " refused)\n";

  // Idle: let registration settle, then read the coordinator's CPU time over a window.
  std::this_thread::sleep_for(3s);
  auto a = sampleProc(coordinator->pid());
  std::this_thread::sleep_for(10s);
  auto b = sampleProc(coordinator->pid());
  if (a && b) {
    auto share = [&](uint64_t from, uint64_t to) {
      return 100.0 * static_cast<double>(to - from) / static_cast<double>(sysconf(_SC_CLK_TCK)) /
             (millisSince(a->at, b->at) / 1000.0);
    };
    double cpu = share(a->cpu_ticks, b->cpu_ticks);
    double io = share(a->zmq_io_ticks, b->zmq_io_ticks);
    double engine = share(a->main_ticks, b->main_ticks);
    figures.push_back({"scale", "idle CPU " + label + " (% of a core)", {cpu}});
    // Where the cost lands: ZeroMQ's I/O thread does the handshakes, the ZMTP heartbeats and
    // CURVE's encryption; the engine thread (the main one) sees only decoded frames; the rest
    // is the HTTP server's threads.
    figures.push_back({"scale", "idle CPU " + label + ", engine thread (%)", {engine}});
    figures.push_back({"scale", "idle CPU " + label + ", ZMQ I/O thread (%)", {io}});
    figures.push_back({"scale", "idle RSS " + label + " (MB)", {b->rss_kb / 1024.0}});
    std::cerr << "   idle: " << cpu << "% CPU (engine thread " << engine << "%, ZeroMQ I/O thread "
              << io << "%, other threads " << cpu - engine - io << "%), " << b->rss_kb / 1024
              << " MB RSS\n";
  }

  auto poll_every = std::chrono::milliseconds(std::max(20, n / 20));
  auto deadline = std::chrono::milliseconds(60000 + 30 * n);
  Figure fanout{"scale", "fan-out " + label + " (ms)", {}};
  for (int run = 0; run < fanout_runs; ++run) {
    auto t0 = std::chrono::system_clock::now();
    std::string id = coordinator->submit(plan("fanout", run));
    if (id.empty()) break;
    json d = coordinator->waitFinal(id, poll_every, deadline);
    if (d.is_null() || d.value("state", "") != "succeeded") {
      std::cerr << "   fan-out run " << run << ": " << (d.is_null() ? "timed out" : d.dump())
                << "\n";
      break;
    }
    auto end = support::parseRfc3339(d.value("updated_at", ""));
    if (!end) break;
    double ms = millisSince(t0, *end);
    fanout.values.push_back(ms);
    std::cerr << "   fan-out run " << run << ": " << ms << " ms (seen after "
              << millisSince(t0, std::chrono::system_clock::now()) << " ms)\n";
  }
  figures.push_back(fanout);

  Figure abort_fig{"scale", "abort " + label + ": failure -> last abort (ms)", {}};
  Figure rollback_fig{"scale", "abort " + label + ": failure -> last rollback (ms)", {}};
  for (int run = 0; run < abort_runs; ++run) {
    if (!askAll(fleet, "reset") || !askAll(fleet, "hold 1")) break;
    std::string id = coordinator->submit(plan("abortbench", run));
    if (id.empty()) break;
    if (!support::pollUntil([&] { return sumStatAll(fleet, "held") == n; }, deadline, 50ms)) {
      std::cerr << "   abort run " << run << ": the apply never reached every agent\n";
      break;
    }
    std::optional<std::string> failed = fleet.front()->ask("fail " + simName(0));
    if (!failed || failed->rfind("failed ", 0) != 0) break;
    int64_t t0 = std::stoll(failed->substr(failed->rfind(' ') + 1));
    // Every other agent gets an abort; every agent that ran apply (all N) gets a rollback.
    bool all = support::pollUntil(
        [&] { return sumStatAll(fleet, "aborts") >= n - 1 && sumStatAll(fleet, "rollbacks") >= n; },
        deadline, 20ms);
    int64_t last_abort = maxStat(fleet, "last_abort_ns");
    int64_t last_rollback = maxStat(fleet, "last_rollback_ns");
    if (sumStatAll(fleet, "aborts") >= n - 1) abort_fig.values.push_back((last_abort - t0) / 1e6);
    if (all) rollback_fig.values.push_back((last_rollback - t0) / 1e6);
    std::cerr << "   abort run " << run << ": last abort " << (last_abort - t0) / 1e6
              << " ms, last rollback " << (all ? std::to_string((last_rollback - t0) / 1e6) : "-")
              << " ms\n";
    askAll(fleet, "hold 0");
    json d = coordinator->waitFinal(id, poll_every, deadline);
    if (d.is_null()) break;
  }
  figures.push_back(abort_fig);
  figures.push_back(rollback_fig);
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
  // --mechanism and --keep are this program's own; the rest are the benchmarks' common flags.
  std::vector<Mechanism> mechanisms = {Mechanism::kNull, Mechanism::kCurve};
  bool keep = false;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--keep") {
      keep = true;
      continue;
    }
    if (std::string(argv[i]) != "--mechanism") {
      rest.push_back(argv[i]);
      continue;
    }
    std::string m = i + 1 < argc ? argv[++i] : "";
    if (m == "null") {
      mechanisms = {Mechanism::kNull};
    } else if (m == "curve") {
      mechanisms = {Mechanism::kCurve};
    } else if (m == "both") {
      mechanisms = {Mechanism::kNull, Mechanism::kCurve};
    } else {
      std::cerr << kUsage;
      return 2;
    }
  }
  CommonArgs args = parseArgs(static_cast<int>(rest.size()), rest.data(), kUsage);
  if (args.sizes.empty()) args.sizes = {100, 1000, 10000};
  std::vector<Figure> figures;
  for (int n : args.sizes) {
    int fanout_runs = args.runs > 0 ? args.runs : (n >= 10000 ? (args.quick ? 2 : 5) : 10);
    int abort_runs = args.runs > 0 ? args.runs : (n >= 10000 ? (args.quick ? 1 : 3) : 3);
    for (Mechanism m : mechanisms)
      runSize(n, m, fanout_runs, abort_runs, args.quick, keep, figures);
  }
  printFigures(figures, args.summary);
  return 0;
}
