// flotilla-coordinator: flags, logging, signals; the rest is runServer().
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <iostream>
#include <optional>

#include "common/curve.hpp"
#include "common/logging.hpp"
#include "common/rules.hpp"
#include "coordinator/server.hpp"
#include "coordinator/tokens.hpp"

using namespace flotilla;

namespace {
void onSignal(int) { coordinator::requestStop(); }
void onHangup(int) { coordinator::requestPolicyReload(); }

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

namespace {
// flotilla-coordinator bootstrap-admin: the token alone on stdout, everything else on stderr.
int bootstrapAdmin(const std::string& dir, const std::string& name) {
  ::umask(077);  // the store holds token hashes and the audit trail
  common::setupLogging("bootstrap-admin", "warn").ignoreError();
  auto store = coordinator::Store::open(dir);
  if (!store.ok()) {
    const std::string& why = store.status().message();
    if (why.find("lock") != std::string::npos || why.find("LOCK") != std::string::npos) {
      std::cerr << "flotilla-coordinator: the store in " << dir
                << " is in use: stop the flotilla-coordinator running on it first (" << why
                << ")\n";
    } else {
      std::cerr << "flotilla-coordinator: " << why << "\n";
    }
    return 1;
  }
  // The reserve protects running deployments' writes; one token record on a stopped
  // coordinator's store does not need it (a small data dir would refuse the first token).
  (*store)->setMinFreeBytes(1 << 20);
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto secret = coordinator::bootstrapAdmin(**store, name, now);
  if (!secret.ok()) {
    std::cerr << "flotilla-coordinator: bootstrap-admin: " << secret.status().message() << "\n";
    return 1;
  }
  std::cout << *secret << std::endl;
  std::cerr << "flotilla-coordinator: admin token " << name
            << " created; it is shown only this once (the store keeps its SHA-256)\n";
  return 0;
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
  app.set_version_flag("--version", "flotilla-coordinator " FLOTILLA_VERSION);
  app.add_option("--data-dir", options.data_dir, "Directory of the RocksDB store")
      ->capture_default_str();
  app.add_option("--listen-agents", options.listen_agents,
                 "ZeroMQ address agents connect to (tcp://HOST:PORT)")
      ->capture_default_str();
  app.add_option("--listen-http", options.listen_http,
                 "HOST:PORT of the HTTP API, the web dashboard (open http://HOST:PORT/ and log\n"
                 "in with an API token), event streams and /metrics (port 0 = any)")
      ->capture_default_str();
  app.add_option("--agent-lost-after", lost_after,
                 "Silence after which an agent is lost and its in-flight steps count as failed")
      ->capture_default_str();
  app.add_option("--heartbeat", heartbeat,
                 "Heartbeat interval asked of agents; longer for a fleet too large for\n"
                 "--max-heartbeat-rate at it")
      ->capture_default_str();
  app.add_option("--max-heartbeat-rate", options.engine.max_heartbeats_per_second,
                 "Heartbeats a second the whole fleet may send: a registering agent is asked\n"
                 "for --heartbeat, or fleet size / this if longer, at most a third of\n"
                 "--agent-lost-after (0: always --heartbeat)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  coordinator::HttpLimits& limits = options.http_limits;
  app.add_option("--tls-cert", options.tls_cert,
                 "PEM certificate (chain) of the HTTP API; with --tls-key the API speaks only\n"
                 "HTTPS (TLS 1.2+). Without them it refuses any non-loopback --listen-http")
      ->type_name("FILE");
  app.add_option("--tls-key", options.tls_key, "PEM private key for --tls-cert")->type_name("FILE");
  app.add_option("--http-threads", limits.min_threads,
                 "HTTP worker threads kept when idle (more start on demand, one per connection,\n"
                 "up to --http-max-connections)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--http-max-connections", limits.max_connections,
                 "HTTP connections served at once; more wait for a free one")
      ->capture_default_str()
      ->check(CLI::Range(16, 65536));
  app.add_option("--http-per-client", limits.per_client,
                 "Open HTTP connections one client address may hold before its newest ones that\n"
                 "have not sent a request yet are cut")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  std::string header_timeout = "10s";
  app.add_option("--http-header-timeout", header_timeout,
                 "Time from connect (TLS handshake included) to a whole request head; slower\n"
                 "connections are cut")
      ->capture_default_str();
  std::string request_timeout = "60s";
  app.add_option("--http-request-timeout", request_timeout,
                 "Time from a request's head to its answer (event streams excepted); slower\n"
                 "requests are cut")
      ->capture_default_str();
  app.add_option("--http-rate-limit", limits.rate_per_second,
                 "Requests per second per API token (429 beyond it, with Retry-After); 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--http-rate-burst", limits.rate_burst,
                 "Requests a token may make at once before --http-rate-limit applies")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e9));
  app.add_option("--max-event-streams", limits.max_streams,
                 "Event streams (SSE) open at once; more get 503 with Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--event-streams-per-token", limits.streams_per_token,
                 "Event streams one API token may hold open at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  uint64_t min_free_mb = flotilla::coordinator::Store::kDefaultMinFreeBytes >> 20;
  app.add_option("--min-free-space-mb", min_free_mb,
                 "Free space (MiB) kept on the data dir's file system: under it no write is made,\n"
                 "new deployments are refused and running ones wait until space is freed")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  app.add_flag("--insecure", options.insecure_agents,
               "Agents connect without CURVE keys or enrollment (NULL mechanism): anyone who\n"
               "reaches the agent port can act as any cluster. Loopback addresses only; for\n"
               "experiments. Without it the agent channel is CurveZMQ: the key pair is made in\n"
               "DATA_DIR/keys/ on first start and only enrolled agent keys get in");

  app.add_option("--webhook-allow", options.webhook_allow,
                 "URL prefix alert webhooks may post to (repeatable), e.g.\n"
                 "https://hooks.example.com/deploys. A plan's webhook outside every prefix is\n"
                 "refused and counted, never contacted (none are allowed by default)");
  app.add_option("--policy", options.policy_path,
                 "The organisation's rules (YAML): environments by agent labels, who may deploy\n"
                 "to each, the approvals they require (a plan can add to them, never weaken\n"
                 "them). Any mistake stops the start, each with its line:column. Read again on\n"
                 "SIGHUP or POST /api/v1/policy/reload; a reload with a mistake keeps the\n"
                 "policy in force. See README \"Policy\"")
      ->check(CLI::ExistingFile);

  // show-key: the public key agents pin (--coordinator-key). Works while the coordinator runs.
  std::string key_data_dir = options.data_dir;
  CLI::App* show_key = app.add_subcommand(
      "show-key",
      "Print the coordinator's CURVE public key (made on first start, or now if missing),\n"
      "for agents' --coordinator-key");
  show_key->add_option("--data-dir", key_data_dir, "The coordinator's data directory")
      ->capture_default_str();
  app.add_option("--allowed-host", options.allowed_hosts,
                 "Host header name (NAME or NAME:PORT) the HTTP API also answers to, besides its\n"
                 "listen host, localhost, 127.0.0.1 and [::1] with the listen port; others get\n"
                 "421 (a guard against DNS rebinding). Repeatable")
      ->type_name("NAME");

  // bootstrap-admin: the first admin API token, on a stopped coordinator's (or a fresh) data dir.
  std::string bootstrap_dir;
  std::string bootstrap_name = "admin";
  CLI::App* bootstrap = app.add_subcommand(
      "bootstrap-admin",
      "Create the first admin API token and print it (once) on stdout; run it before the first\n"
      "start or on a stopped coordinator. Refused when an admin token exists");
  bootstrap->add_option("--data-dir", bootstrap_dir, "The coordinator's data dir")->required();
  bootstrap->add_option("--name", bootstrap_name, "Name of the token (in the audit trail)")
      ->capture_default_str();
  bootstrap->footer(
      "Prints only the token, so that a script can keep it:\n"
      "  flotilla-coordinator bootstrap-admin --data-dir /var/lib/flotilla > admin.token\n"
      "  chmod 600 admin.token\n"
      "  flotilla --token-file admin.token tokens create ci --role deployer --env staging\n"
      "The store keeps only its SHA-256: a lost token cannot be shown again.\n"
      "Exit: 0 created; 1 an admin token exists, or the store is in use or cannot be opened.");
  CLI11_PARSE(app, argc, argv);
  if (bootstrap->parsed()) return bootstrapAdmin(bootstrap_dir, bootstrap_name);
  if (show_key->parsed()) {
    ::umask(077);
    auto keys = common::loadOrCreateKeyPair(coordinator::keysDir(key_data_dir),
                                            coordinator::kCoordinatorKeyName);
    if (!keys.ok()) {
      std::cerr << "flotilla-coordinator show-key: " << keys.status().message() << "\n";
      return 1;
    }
    std::cout << keys->public_key << "\n";
    return 0;
  }
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
  // A flag's duration, longer than 0; nothing (and the message printed) otherwise.
  auto positive = [](const std::string& flag,
                     const std::string& text) -> std::optional<std::chrono::milliseconds> {
    auto d = common::parseDuration(text);
    if (d.ok() && d->count() > 0) return *d;
    std::cerr << "flotilla-coordinator: " << flag << ": "
              << (d.ok() ? "must be longer than 0" : d.status().message()) << "\n";
    return std::nullopt;
  };
  auto header_deadline = positive("--http-header-timeout", header_timeout);
  auto request_deadline = positive("--http-request-timeout", request_timeout);
  if (!header_deadline || !request_deadline) return 2;
  limits.header_deadline = *header_deadline;
  limits.request_deadline = *request_deadline;
  if (limits.max_connections < limits.min_threads) limits.max_connections = limits.min_threads;
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
  std::signal(SIGHUP, onHangup);
  s = coordinator::runServer(options);
  if (!s.ok()) {
    std::cerr << "flotilla-coordinator: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
