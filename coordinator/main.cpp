// flotilla-coordinator: flags, logging, signals; the rest is runServer().
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "common/logging.hpp"
#include "common/plan.hpp"
#include "coordinator/server.hpp"

using namespace flotilla;

namespace {
void onSignal(int) { coordinator::requestStop(); }

// Every agent holds one TCP connection, one descriptor, on the ROUTER: the usual soft limit of
// 1024 would refuse the 1,000th agent. Take the hard limit.
void raiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlim_t was = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    spdlog::info("open file limit raised from {} to {}", was, lim.rlim_cur);
  }
  if (lim.rlim_cur < 16384) {
    spdlog::warn("open file limit is {}: at most about that many agents can connect", lim.rlim_cur);
  }
}
}  // namespace

int main(int argc, char** argv) {
  ::umask(077);  // the data dir (RocksDB, keys) is born private: 0700 dirs, 0600 files
  coordinator::ServerOptions options;
  std::string log_level = "info";
  std::string lost_after = "15s";
  std::string heartbeat = "1s";

  CLI::App app{
      "flotilla-coordinator: stores deployment plans in RocksDB and drives them wave by wave\n"
      "across the agents connected to it. Every accepted deployment and every transition is\n"
      "synced to disk before agents or clients hear of it; after a restart every unfinished\n"
      "deployment resumes where it was."};
  app.set_version_flag("--version", "flotilla-coordinator 0.1.0");
  app.add_option("--data-dir", options.data_dir, "Directory of the RocksDB store")
      ->capture_default_str();
  app.add_option("--listen-agents", options.listen_agents,
                 "ZeroMQ address agents connect to (tcp://HOST:PORT)")
      ->capture_default_str();
  app.add_option("--listen-http", options.listen_http,
                 "HOST:PORT of the HTTP API, dashboard feeds and /metrics (port 0 = any)")
      ->capture_default_str();
  app.add_option("--agent-lost-after", lost_after,
                 "Silence after which an agent is lost and its in-flight steps count as failed")
      ->capture_default_str();
  app.add_option("--heartbeat", heartbeat, "Heartbeat interval asked of agents")
      ->capture_default_str();
  app.add_option("--http-threads", options.http_threads,
                 "HTTP worker threads (each open event stream holds one)")
      ->capture_default_str()
      ->check(CLI::Range(4, 1024));
  uint64_t min_free_mb = flotilla::coordinator::Store::kDefaultMinFreeBytes >> 20;
  app.add_option("--min-free-space-mb", min_free_mb,
                 "Free space (MiB) kept on the data dir's file system: under it no write is made,\n"
                 "new deployments are refused and running ones wait until space is freed")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.min_free_bytes = min_free_mb << 20;

  auto lost = common::parseDuration(lost_after);
  auto beat = common::parseDuration(heartbeat);
  if (!lost.ok() || !beat.ok()) {
    std::cerr << "flotilla-coordinator: "
              << (!lost.ok() ? "--agent-lost-after: " + lost.status().message()
                             : "--heartbeat: " + beat.status().message())
              << "\n";
    return 2;
  }
  if (*lost <= *beat) {
    std::cerr << "flotilla-coordinator: --agent-lost-after must be longer than --heartbeat\n";
    return 2;
  }
  options.engine.agent_lost_after = *lost;
  options.engine.heartbeat_interval = *beat;

  common::Status s = common::setupLogging("coordinator", log_level);
  if (!s.ok()) {
    std::cerr << "flotilla-coordinator: " << s.message() << "\n";
    return 2;
  }
  raiseFileLimit();
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGPIPE, SIG_IGN);
  s = coordinator::runServer(options);
  if (!s.ok()) {
    std::cerr << "flotilla-coordinator: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
