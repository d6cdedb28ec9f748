// The agent: one per cluster. Keeps a ZeroMQ DEALER to the coordinator
// (routing id = cluster name; libzmq reconnects with backoff), registers,
// heartbeats, and runs each step it is told to exactly once, answering
// repeats from its durable record.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "agent/artifact.hpp"
#include "agent/child_process.hpp"
#include "agent/driver.hpp"
#include "agent/process/driver.hpp"
#include "agent/script/driver.hpp"
#include "agent/stage_record.hpp"
#include "common/backoff.hpp"
#include "common/codec.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

// The project version (project() in CMakeLists.txt), also the Debian package's.
inline constexpr const char* kAgentVersion = FLOTILLA_VERSION;

struct AgentOptions {
  std::string cluster;
  std::string coordinator = "tcp://127.0.0.1:7700";
  std::map<std::string, std::string> labels;
  std::string state_dir;
  std::string workdir;
  std::chrono::milliseconds heartbeat{1000};   // until the coordinator says otherwise
  std::chrono::milliseconds kill_grace{5000};  // SIGTERM, then SIGKILL after this
  // On the first stop request: take no new step and wait this long for the running ones to
  // finish and be reported (0 = stop at once). A second request stops at once.
  std::chrono::milliseconds stop_timeout{60000};
  size_t max_output_lines = 1000;  // per stage, sent to the coordinator
  LaunchPolicy launch;             // how steps and replicas start: --pass-env, --run-as
  // The agent channel. Without `insecure`, CurveZMQ: our key pair (kept in the state dir) and
  // the coordinator's public key, pinned: a peer without its secret key cannot complete the
  // handshake, so no command from anyone else is ever read.
  bool insecure = false;
  std::string coordinator_key;  // Z85
  std::string public_key;       // Z85
  std::string secret_key;       // Z85
  // One-time token from `flotilla agents enroll CLUSTER`, sent with registers until the first
  // one is accepted (then the state dir records that we are enrolled).
  std::string enroll_token;
};

class Agent {
  using Clock = std::chrono::steady_clock;

 public:
  Agent(AgentOptions options, std::unique_ptr<StageStore> records);
  ~Agent();
  // Runs until stopped; returns an error only for what it cannot go on without.
  common::Status run();
  // Async-signal-safe. The first request drains: no new step is started (a command for one is
  // neither recorded nor answered, so the coordinator sends it again once we have registered
  // after the restart), running steps finish and are reported, and run() returns when none
  // is left or after stop_timeout. A second request makes run() return at once.
  static void requestStop();

 private:
  // A step under way, whichever driver runs it.
  struct Running {
    StageRecord record;
    std::unique_ptr<StepRun> step;
    std::chrono::milliseconds timeout{0};
    std::chrono::steady_clock::time_point deadline;
    bool timed_out = false;
    bool aborted = false;
    std::string abort_reason;
    std::vector<std::string> pending_lines;
    size_t lines_sent = 0;
    uint32_t lines_dropped = 0;
    std::string last_line;
    int log_fd = -1;
    std::chrono::steady_clock::time_point started;
    ArtifactCapture artifact;  // a script build's digest (agent/artifact.hpp)
  };

  // One handler per message the coordinator may send.
  void onFrame(const zmq::message_t& frame);
  void handleRegistered(schema::Registered::Reader msg);
  void handleReregister(schema::Reregister::Reader msg);
  void handleCommand(schema::StageCommand::Reader msg);
  void handleAbort(schema::Abort::Reader msg);
  void handleRefused(schema::Refused::Reader msg);
  // Why the connection to the coordinator failed (wrong key, refused key), from the socket
  // monitor; logged at most every few seconds per reason.
  void drainMonitor();
  bool enrolled() const;

  void sendRegister();
  void sendHeartbeat();
  void sendResult(const StageRecord& r, uint64_t epoch);
  void sendAlert(const StageKey& key, const AlertReport& alert);
  void sendFigures(const StageKey& key, const FiguresReport& figures);
  void flushOutput(Running& run, bool force);
  void pollSteps();
  // Collects a running step's output and alerts; returns true once it has ended (and was
  // reported).
  bool pollStep(const StageKey& key, Running& run, Clock::time_point now);
  void collect(Running& run);
  // The driver of a command: the process driver for a command with a process spec or a step
  // only it runs, the script driver otherwise; none for a step this agent does not know.
  Driver* driverFor(schema::StageCommand::Reader msg);
  void finish(Running& run, Outcome outcome, int exit_code, const std::string& message);
  void send(capnp::MessageBuilder& message);
  bool acceptEpoch(uint64_t epoch, const char* what);
  // Whether run() should return now; begins the drain on the first stop request.
  bool stopNow(Clock::time_point now);

  AgentOptions options_;
  std::unique_ptr<StageStore> records_;
  ScriptDriver script_driver_;
  ProcessDriver process_driver_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  uint64_t epoch_ = 0;  // the epoch we are registered under (0 = not registered)
  std::chrono::milliseconds heartbeat_;
  std::chrono::steady_clock::time_point next_heartbeat_{};
  std::chrono::steady_clock::time_point next_register_{};
  // Until registered, ask again after 1-2 s, then up to 8-16 s: a coordinator busy with a
  // fleet's handshakes is not asked again by every agent every 2 s.
  common::Backoff register_backoff_;
  std::map<StageKey, Running> running_;
  bool draining_ = false;  // a stop was requested: no new step starts
  Clock::time_point drain_deadline_{};
  uint64_t commands_deferred_ = 0;  // commands not started while draining
  uint64_t dropped_frames_ = 0;
  zmq::socket_t monitor_;
  bool handshake_done_ = false;  // on the current connection
  std::map<int, std::chrono::steady_clock::time_point> monitor_logged_;  // event -> last line
};

}  // namespace flotilla::agent
