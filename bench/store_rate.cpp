// flotilla-bench-store: durable transitions per second through a real coordinator, with 1 and
// with 16 deployments in flight at once, next to the raw fsync rate of the same disk measured
// in the same run (a write + fdatasync loop in the coordinator's directory).
//
// A transition is one durable deployment change (flotilla_transitions_total): each result of
// each stage, each wave start and end, each submission. Under group commit several of them
// share a commit (the results one deployment received in one loop turn) and every commit of a
// loop turn shares one fsync; the commits per second are printed too. The fleet is 16 simulated
// agents that answer every step at once; each deployment runs build, apply, verify on all 16.
// Deployments are submitted back to back (1 at a time, or 16 at a time) for a few seconds.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <thread>

#include "bench/bench_util.hpp"

namespace flotilla::bench {
namespace {

using namespace std::chrono_literals;

constexpr char kUsage[] = "usage: flotilla-bench-store [--runs N] [--quick] [--summary]\n";
constexpr int kAgents = 16;
constexpr auto kWindow = 3s;

std::string plan(int k, int run) {
  return "service: store-" + std::to_string(k) + "\nversion: \"1.0." + std::to_string(run) +
         "\"\ndriver: script\nsteps:\n  build: \"true\"\n  apply: \"true\"\n  verify: \"true\"\n"
         "  rollback: \"true\"\nwaves:\n  - name: all\n    selector: {fleet: bench}\n";
}

// write(4 KiB) + fdatasync in a loop for `window`; syncs per second.
double fsyncRate(const std::string& dir, std::chrono::milliseconds window) {
  std::string path = dir + "/fsync-probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  char block[4096];
  std::memset(block, 'x', sizeof(block));
  auto start = std::chrono::steady_clock::now();
  uint64_t n = 0;
  while (std::chrono::steady_clock::now() - start < window) {
    // Appending, as a WAL does: every sync also writes file-size metadata.
    if (::write(fd, block, sizeof(block)) != static_cast<ssize_t>(sizeof(block))) break;
    if (::fdatasync(fd) != 0) break;
    ++n;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(fd);
  ::unlink(path.c_str());
  return static_cast<double>(n) / secs;
}

// Commits per second with `parallel` deployments in flight, over about kWindow.
double transitionsPerSecond(CoordinatorProcess& c, int parallel, int& run) {
  double before = c.metric("flotilla_transitions_total");
  double commits_before = c.metric("flotilla_store_commits_total");
  auto start = std::chrono::steady_clock::now();
  int deployments = 0;
  while (std::chrono::steady_clock::now() - start < kWindow) {
    std::vector<std::string> ids;
    for (int k = 0; k < parallel; ++k) {
      std::string id = c.submit(plan(k, run));
      if (id.empty()) return 0;
      ids.push_back(id);
    }
    ++run;
    for (const auto& id : ids) {
      json d = c.waitFinal(id, 2ms, 60s);
      if (d.is_null() || d.value("state", "") != "succeeded") {
        std::cerr << "deployment " << id << " did not succeed\n";
        return 0;
      }
      ++deployments;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double after = c.metric("flotilla_transitions_total");
  double commits = c.metric("flotilla_store_commits_total") - commits_before;
  std::cerr << "   " << parallel << " in flight: " << deployments << " deployments, "
            << after - before << " transitions (" << commits << " commits) in " << secs << " s\n";
  return (after - before) / secs;
}

}  // namespace
}  // namespace flotilla::bench

int main(int argc, char** argv) {
  using namespace flotilla::bench;
  CommonArgs args = parseArgs(argc, argv, kUsage);
  int runs = args.runs > 0 ? args.runs : (args.quick ? 2 : 3);
  std::string dir = makeTempDir("store");
  Figure fsync{"store", "raw write+fdatasync (/s)", {}};
  Figure one{"store", "durable transitions, 1 deployment (/s)", {}};
  Figure sixteen{"store", "durable transitions, 16 deployments (/s)", {}};
  {
    auto coordinator = CoordinatorProcess::start(dir);
    if (!coordinator) return 1;
    auto fleet =
        startFleet(coordinator->agents(), kAgents, kAgents, {{"fleet", "bench"}}, dir, 30s);
    if (fleet.empty()) return 1;
    int run = 0;
    for (int i = 0; i < runs; ++i) {
      fsync.values.push_back(fsyncRate(dir, 1s));
      std::cerr << "   fsync: " << fsync.values.back() << "/s\n";
      one.values.push_back(transitionsPerSecond(*coordinator, 1, run));
      sixteen.values.push_back(transitionsPerSecond(*coordinator, 16, run));
    }
  }
  removeTree(dir);
  printFigures({fsync, one, sixteen}, args.summary);
  return 0;
}
