// flotilla-demo-service: the command line, the HTTP wiring (cpp-httplib) and signal handling
// around the behaviour in service.hpp.
#include <httplib.h>
#include <sys/socket.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <thread>

#include "examples/demo-service/service.hpp"

namespace flotilla::demo {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitServeFailed = 1;  // could not bind or serve
constexpr int kExitBadConfig = 2;    // flags or manifest rejected after parsing

// Idle keep-alive connections hold up a graceful stop until they time out (httplib's default
// is 5s); a short timeout keeps SIGTERM-to-exit quick for whoever supervises the replica.
constexpr time_t kKeepAliveTimeoutSec = 2;

constexpr int kWakeSignal = SIGUSR1;

constexpr char kDescription[] =
    R"(A stand-in for a real service, for Flotilla's tests and quickstart.

Endpoints:
  GET /         200 "checkout <version>" or an injected 500; header X-Version on every answer
  GET /health   200 {"status":"ok","version":...}, or 503 once --health-fail-after has passed
  GET /metrics  Prometheus text format 0.0.4: http_requests_total{code}, the
                http_request_duration_seconds histogram (both for / only),
                process_start_time_seconds and demo_build_info{version}

Errors are spread deterministically, not drawn at random: request n (counting from 0) fails
when floor((n+1) * rate) > floor(n * rate), so after n requests exactly floor(n * rate) have
failed; --error-rate 0.2 fails exactly 20 of every 100 requests.
)";

constexpr char kFooter[] = R"(
Manifest (--manifest FILE), every key optional; flags given on the command line win:
  {"error_rate": 0.2, "latency_ms": 300, "latency_jitter_ms": 50, "health_fail_after_ms": 5000}
  health_fail_after_ms: null means never.

Once listening it prints one line on stdout, "listening on HOST:PORT version VERSION";
logs go to stderr. SIGTERM or SIGINT stops it gracefully (exit status 0).)";

std::string describe(Milliseconds duration) {
  return duration == kNever ? "never" : std::to_string(duration.count()) + "ms";
}

void send(httplib::Response& res, const Response& answer, const std::string& version) {
  res.status = answer.status;
  res.set_header("X-Version", version);
  res.set_content(answer.body, answer.content_type.c_str());
}

int fail(int code, const std::string& message) {
  std::cerr << "flotilla-demo-service: " << message << std::endl;
  return code;
}

int run(int argc, char** argv) {
  CLI::App app{kDescription, "flotilla-demo-service"};
  app.footer(kFooter);
  app.get_formatter()->column_width(34);

  int port = 0;
  std::string host = "127.0.0.1";
  std::string version = "1.0.0";
  double error_rate = 0.0;
  int64_t latency_ms = 0;
  int64_t latency_jitter_ms = 0;
  std::string fail_after_text = "never";
  std::string manifest_path;
  std::string log_level = "info";

  app.add_option("--port", port, "Port to listen on; 0 picks a free one (read it from stdout)")
      ->required()
      ->check(CLI::Range(0, 65535));
  app.add_option("--host", host, "Address to listen on")->capture_default_str();
  app.add_option("--version", version, "Version to report in bodies, headers and metrics")
      ->capture_default_str();
  auto* error_rate_opt =
      app.add_option("--error-rate", error_rate,
                     "Share of / requests answered 500, from 0 to 1 (deterministic, see above)")
          ->check(CLI::Range(0.0, 1.0));
  auto* latency_opt =
      app.add_option("--latency-ms", latency_ms, "Delay added to every / request, in ms")
          ->check(CLI::Range(int64_t{0}, int64_t{kMaxDelay.count()}));
  auto* jitter_opt =
      app.add_option("--latency-jitter-ms", latency_jitter_ms,
                     "Each / request's delay varies by up to +- this many ms (fixed per request "
                     "number, so runs repeat)")
          ->check(CLI::Range(int64_t{0}, int64_t{kMaxDelay.count()}));
  auto* fail_after_opt = app.add_option(
      "--health-fail-after", fail_after_text,
      "/health answers 503 once this long has passed since start: e.g. 0s (from the start), "
      "500ms, 5s, 2m; default never");
  app.add_option("--manifest", manifest_path,
                 "JSON file with the behaviour (keys below); flags override it");
  app.add_option("--log-level", log_level, "trace, debug (logs every request), info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (Status s = validateVersion(version); !s.ok()) return fail(kExitBadConfig, s.message());
  BehaviourOverrides flags;
  if (error_rate_opt->count() > 0) flags.error_rate = error_rate;
  if (latency_opt->count() > 0) flags.latency = Milliseconds(latency_ms);
  if (jitter_opt->count() > 0) flags.latency_jitter = Milliseconds(latency_jitter_ms);
  if (fail_after_opt->count() > 0) {
    auto fail_after = parseFailAfter(fail_after_text);
    if (!fail_after.ok()) {
      return fail(kExitBadConfig, "--health-fail-after: " + fail_after.status().message());
    }
    flags.health_fail_after = *fail_after;
  }
  BehaviourOverrides manifest;
  if (!manifest_path.empty()) {
    auto loaded = loadManifest(manifest_path);
    if (!loaded.ok()) return fail(kExitBadConfig, loaded.status().message());
    manifest = *loaded;
  }
  const Behaviour behaviour = resolveBehaviour(manifest, flags);
  if (Status s = validateBehaviour(behaviour); !s.ok()) return fail(kExitBadConfig, s.message());

  auto logger = spdlog::stderr_color_mt("demo-service");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%n] %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);

  // Block the stop signals before any thread exists so every thread inherits the mask and
  // only the waiter below sees them; stopping from a signal handler is not async-signal-safe.
  // SIGUSR1 is how main wakes the waiter when serving ends without a signal.
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGTERM);
  sigaddset(&waited, SIGINT);
  sigaddset(&waited, kWakeSignal);
  pthread_sigmask(SIG_BLOCK, &waited, nullptr);
  // A client that hangs up mid-answer must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  RealClock clock;
  Service service(version, behaviour, clock);
  httplib::Server server;
  server.set_keep_alive_timeout(kKeepAliveTimeoutSec);
  // Behind HAProxy's reused connections each answer would otherwise wait for a
  // delayed ACK (~20 ms), which latency analysis would then measure instead of the service.
  server.set_tcp_nodelay(true);
  // cpp-httplib sets SO_REUSEPORT by default: a second replica (of another
  // cluster on this host) could then bind the same port and share its
  // connections. SO_REUSEADDR alone keeps quick restarts working.
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  // Every route, in one place.
  server.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    send(res, service.handleRoot(), version);
  });
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    send(res, service.handleHealth(), version);
  });
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    send(res, service.handleMetrics(), version);
  });
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} {} from {}", req.method, req.path, res.status, req.remote_addr);
  });

  int bound_port = port;
  if (port == 0) {
    bound_port = server.bind_to_any_port(host);
    if (bound_port < 0) return fail(kExitServeFailed, "cannot bind " + host + " to a free port");
  } else if (!server.bind_to_port(host, port)) {
    return fail(kExitServeFailed, "cannot bind " + host + ":" + std::to_string(port));
  }
  // The socket is listening from here on, so connections made after this line queue up even
  // before the accept loop runs.
  std::cout << "listening on " << host << ":" << bound_port << " version " << version << std::endl;
  spdlog::info("version {}: error_rate={} latency={}ms jitter={}ms health_fail_after={}", version,
               behaviour.error_rate, behaviour.latency.count(), behaviour.latency_jitter.count(),
               describe(behaviour.health_fail_after));

  std::atomic<bool> serving_done{false};
  std::thread waiter([&] {
    int signo = 0;
    // A stray SIGUSR1 from outside is not a reason to stop.
    while (sigwait(&waited, &signo) == 0 && signo == kWakeSignal) {
      if (serving_done) return;
    }
    if (serving_done) return;
    spdlog::info("signal {}: stopping", signo);
    // A signal right after the "listening" line can come before the accept loop has started,
    // when stop() would do nothing; wait for it. stop() must run once only.
    while (!serving_done && !server.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!serving_done) server.stop();
  });

  const bool served = server.listen_after_bind();
  serving_done = true;
  // Wake the waiter if no signal did; if one already did, this stays pending and blocked.
  pthread_kill(waiter.native_handle(), kWakeSignal);
  waiter.join();
  if (!served) return fail(kExitServeFailed, "serving stopped with an error");
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace
}  // namespace flotilla::demo

int main(int argc, char** argv) {
  try {
    return flotilla::demo::run(argc, argv);
  } catch (const std::exception& e) {
    // Nothing is expected to throw past run(); if something does, say what before exiting.
    std::cerr << "flotilla-demo-service: " << e.what() << std::endl;
    return 1;
  }
}
