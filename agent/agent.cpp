// The agent's loop and message handlers (the frames it sends: agent/agent_send.cpp).
#include "agent/agent.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>

#include "common/crypto.hpp"
#include "common/failpoint.hpp"
#include "common/logging.hpp"
#include "common/time_format.hpp"
#include "common/zmq_monitor.hpp"

namespace flotilla::agent {

using common::Status;
using common::toStd;

namespace {

std::atomic<int> g_stop_requests{0};
std::atomic<int> g_wake_fd{-1};

// Until registered, ask again (the first register may have gone to a coordinator that was not
// up yet, or is busy with a whole fleet coming back): after 1-2 s at first, up to 8-16 s.
constexpr auto kRegisterRetryFirst = std::chrono::seconds(2);
constexpr auto kRegisterRetryCap = std::chrono::seconds(16);
constexpr auto kMaxPollWait = std::chrono::milliseconds(200);

int64_t nowMs() { return common::toUnixMillis(std::chrono::system_clock::now()); }

void wakeLoop() {
  int fd = g_wake_fd.load();
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof(one));
    (void)n;  // a full counter already means "wake up"
  }
}

StageKey keyOf(schema::StageRef::Reader ref) {
  return StageKey{toStd(ref.getDeploymentId()), toStd(ref.getStageId()), ref.getAttempt(),
                  toStd(ref.getNonce())};
}

}  // namespace

void Agent::requestStop() {
  g_stop_requests.fetch_add(1);
  int fd = g_wake_fd.load();
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof(one));
    (void)n;
  }
}

Agent::Agent(AgentOptions options, std::unique_ptr<StageStore> records)
    : options_(std::move(options)),
      records_(std::move(records)),
      script_driver_(options_.workdir, options_.kill_grace, options_.launch, options_.cluster),
      process_driver_(options_.state_dir, options_.cluster, options_.launch),
      context_(1),
      socket_(context_, zmq::socket_type::dealer),
      heartbeat_(options_.heartbeat),
      register_backoff_(kRegisterRetryFirst, kRegisterRetryCap, std::random_device{}()),
      monitor_(context_, zmq::socket_type::pair) {}

Agent::~Agent() {
  for (auto& [key, run] : running_) {
    if (run.log_fd >= 0) ::close(run.log_fd);
  }
}

Status Agent::run() {
  // What a driver left running may outlive the agent (the process driver's replicas): each
  // takes back what is still alive.
  for (Driver* driver : std::initializer_list<Driver*>{&script_driver_, &process_driver_}) {
    const std::string name = driver->name();
    Status recovered = driver->recover(
        [&name](const std::string& line) { spdlog::info("{} driver: {}", name, line); });
    if (!recovered.ok()) return recovered;
  }
  // A step that was running when the agent died: its effect is unknown. Say
  // so (the coordinator decides), never run it again on our own.
  for (const auto& r : records_->all()) {
    if (r.state == RecordState::kStarted) {
      // Whatever the step left running must not finish its work after the
      // coordinator has been told the effect is unknown (and rolled back).
      if (r.pgid > 0 && r.start_ticks > 0) {
        int killed = killLeftoverGroup(r.pgid, r.start_ticks);
        if (killed > 0) {
          spdlog::warn("stage {}: killed {} leftover processes of group {}", r.key.toString(),
                       killed, r.pgid);
        }
      }
      StageRecord done = r;
      done.state = RecordState::kFinished;
      done.outcome = Outcome::UNKNOWN;
      done.message = "the agent stopped while this step ran; its effect is unknown";
      done.finished_ms = nowMs();
      Status s = records_->put(done);
      if (!s.ok()) return s;
      spdlog::warn("stage {} was interrupted by an agent restart: marked unknown",
                   r.key.toString());
    }
  }
  try {
    // No routing id of our own: the coordinator names connections itself and knows us by key.
    if (!options_.insecure) {
      socket_.set(zmq::sockopt::curve_serverkey, options_.coordinator_key);
      socket_.set(zmq::sockopt::curve_publickey, options_.public_key);
      socket_.set(zmq::sockopt::curve_secretkey, options_.secret_key);
    }
    // ZMTP heartbeats: a dead connection is noticed (and replaced) without waiting for TCP.
    // Every 5 s, 15 s without an answer (the coordinator's lost deadline): each PING is a
    // message the coordinator's I/O thread receives and answers, 2,000 a second from 10,000
    // agents (every 2 s, they were 70% of its idle work).
    socket_.set(zmq::sockopt::heartbeat_ivl, 5000);
    socket_.set(zmq::sockopt::heartbeat_timeout, 15000);
    const std::string monitor_endpoint = "inproc://flotilla-agent-monitor";
    if (zmq_socket_monitor(
            socket_.handle(), monitor_endpoint.c_str(),
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
      return Status::Internal("cannot monitor the coordinator connection");
    }
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(monitor_endpoint);
    socket_.set(zmq::sockopt::reconnect_ivl, 100);
    socket_.set(zmq::sockopt::reconnect_ivl_max, 5000);  // exponential backoff up to 5 s
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(common::kMaxFrameBytes));
    socket_.set(zmq::sockopt::linger, 2000);  // let queued results out on shutdown
    socket_.connect(options_.coordinator);
  } catch (const zmq::error_t& e) {
    return Status::IoError("cannot connect to " + options_.coordinator + ": " + e.what());
  }
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) return Status::IoError("eventfd failed");
  g_wake_fd = wake;
  spdlog::info("agent {} connecting to {} (labels: {}, state in {})", options_.cluster,
               options_.coordinator, options_.labels.size(), options_.state_dir);
  sendRegister();

  while (!stopNow(Clock::now())) {
    auto now = Clock::now();
    if (epoch_ != 0 && now >= next_heartbeat_) sendHeartbeat();
    if (epoch_ == 0 && now >= next_register_) sendRegister();

    std::vector<zmq::pollitem_t> items;
    items.push_back({static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0});
    items.push_back({nullptr, wake, ZMQ_POLLIN, 0});
    items.push_back({static_cast<void*>(monitor_), 0, ZMQ_POLLIN, 0});
    std::vector<int> fds;
    for (auto& [key, run] : running_) run.step->pollFds(fds);
    for (int fd : fds) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    auto wait = kMaxPollWait;
    try {
      zmq::poll(items.data(), items.size(), wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("poll: {}", e.what());
    }
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t n;
      ssize_t r = ::read(wake, &n, sizeof(n));
      (void)r;
    }
    if (items[2].revents & ZMQ_POLLIN) drainMonitor();
    while (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      zmq::message_t frame;
      try {
        if (!socket_.recv(frame, zmq::recv_flags::dontwait)) break;
      } catch (const zmq::error_t& e) {
        spdlog::error("receive: {}", e.what());
        break;
      }
      // A DEALER frame from the ROUTER has no envelope; more parts mean garbage.
      if (frame.more()) {
        ++dropped_frames_;
        zmq::message_t rest;
        while (frame.more() && socket_.recv(rest, zmq::recv_flags::dontwait) && rest.more()) {
        }
        continue;
      }
      onFrame(frame);
    }
    pollSteps();
  }
  if (running_.empty()) {
    spdlog::info("agent {} stopping; no step is running", options_.cluster);
  } else {
    spdlog::warn(
        "agent {} stopping; {} steps still running are stopped and will be reported "
        "unknown",
        options_.cluster, running_.size());
  }
  // Steps still running stay "started" in the record: after a restart they
  // are reported as unknown, never silently run again. Their runs stop as they are destroyed.
  for (auto& [key, run] : running_) {
    if (run.log_fd >= 0) ::close(run.log_fd);
  }
  running_.clear();
  g_wake_fd = -1;
  ::close(wake);
  return Status::Ok();
}

bool Agent::stopNow(Clock::time_point now) {
  const int requests = g_stop_requests.load();
  if (requests == 0) return false;
  if (requests > 1) return true;
  if (!draining_) {
    draining_ = true;
    drain_deadline_ = now + options_.stop_timeout;
    if (!running_.empty() && options_.stop_timeout.count() > 0) {
      spdlog::info(
          "agent {} draining: {} steps running; no new step starts; stopping when they have "
          "ended, within {} ms (a second signal stops now)",
          options_.cluster, running_.size(), options_.stop_timeout.count());
    }
  }
  return running_.empty() || now >= drain_deadline_;
}

// ---- Message dispatch: the one place that decides what a frame means ----------------------

void Agent::onFrame(const zmq::message_t& frame) {
  auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
  if (!decoded.ok()) {
    ++dropped_frames_;
    spdlog::warn("dropped a frame ({} dropped so far): {}", dropped_frames_,
                 common::loggable(decoded.status().message()));
    return;
  }
  auto env = (*decoded)->root();
  try {
    switch (env.which()) {
      case schema::Envelope::REGISTERED:
        handleRegistered(env.getRegistered());
        return;
      case schema::Envelope::REREGISTER:
        handleReregister(env.getReregister());
        return;
      case schema::Envelope::STAGE_COMMAND:
        handleCommand(env.getStageCommand());
        return;
      case schema::Envelope::ABORT:
        handleAbort(env.getAbort());
        return;
      case schema::Envelope::REFUSED:
        handleRefused(env.getRefused());
        return;
      case schema::Envelope::REGISTER:
      case schema::Envelope::HEARTBEAT:
      case schema::Envelope::STAGE_PROGRESS:
      case schema::Envelope::STAGE_RESULT:
      case schema::Envelope::ALERT:
      case schema::Envelope::FIGURES:
        break;
    }
    ++dropped_frames_;
    spdlog::warn("dropped a {} frame: the coordinator does not send that",
                 common::messageTypeName(env.which()));
  } catch (const kj::Exception& e) {
    ++dropped_frames_;
    spdlog::warn("dropped a malformed frame: {}", common::loggable(e.getDescription().cStr()));
  }
}

bool Agent::acceptEpoch(uint64_t epoch, const char* what) {
  // Epochs grow by one per coordinator start. A jump by more than this is not a coordinator
  // we know restarting: never store it (it would make us refuse the real one's commands).
  constexpr uint64_t kMaxEpochJump = 1000000;
  if (epoch == 0 || epoch > records_->highestEpoch() + kMaxEpochJump) {
    ++dropped_frames_;
    spdlog::warn("refused {} from epoch {}: not a plausible successor of epoch {}", what, epoch,
                 records_->highestEpoch());
    return false;
  }
  if (epoch < records_->highestEpoch()) {
    ++dropped_frames_;
    spdlog::warn("refused {} from epoch {}: already saw epoch {}", what, epoch,
                 records_->highestEpoch());
    return false;
  }
  Status s = records_->setHighestEpoch(epoch);
  if (!s.ok()) {
    spdlog::error("cannot record epoch {}: {}", epoch, s.toString());
    return false;
  }
  return true;
}

void Agent::handleRegistered(schema::Registered::Reader msg) {
  if (!acceptEpoch(msg.getEpoch(), "a registration")) return;
  epoch_ = msg.getEpoch();
  register_backoff_.reset();
  if (!options_.insecure && !enrolled()) {
    // The token is spent: never send it again, even after a restart.
    Status s = records_->markEnrolled();
    if (!s.ok()) spdlog::error("cannot record the enrollment: {}", s.toString());
    spdlog::info("enrolled as {}", options_.cluster);
  }
  if (msg.getHeartbeatIntervalMs() >= 100) {
    heartbeat_ = std::chrono::milliseconds(msg.getHeartbeatIntervalMs());
  }
  next_heartbeat_ = Clock::now() + heartbeat_;
  spdlog::info("registered with coordinator epoch {}", epoch_);
}

void Agent::handleRefused(schema::Refused::Reader msg) {
  // Only the pinned coordinator can send this (CURVE): its reason is for the operator.
  spdlog::error("the coordinator refused our registration: {}",
                common::loggable(toStd(msg.getReason()), 400));
  epoch_ = 0;
  // Retryable: our previous connection is still open on its side; try again soon. Otherwise an
  // operator has to act (enroll, or fix the labels): keep asking, slowly.
  next_register_ = Clock::now() + (msg.getRetryable() ? std::chrono::milliseconds(500)
                                                      : std::chrono::milliseconds(10000));
}

bool Agent::enrolled() const { return records_->enrolled(); }

void Agent::drainMonitor() {
  while (auto event = common::nextMonitorEvent(monitor_)) {
    uint16_t what = event->event;
    const uint32_t value = event->value;
    std::string line;
    bool error = true;
    switch (what) {
      case ZMQ_EVENT_CONNECTED:
        handshake_done_ = false;
        continue;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        handshake_done_ = true;
        line = "connected to the coordinator at " + options_.coordinator +
               (options_.insecure ? " (INSECURE: no keys)" : " (CurveZMQ, key pinned)");
        error = false;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        handshake_done_ = true;  // the coordinator answered: its key is right, ours is not in
        line = "the coordinator at " + options_.coordinator + " refused our key (status " +
               std::to_string(value) +
               "): not enrolled, or revoked; enroll with --enroll-token from `flotilla agents "
               "enroll " +
               options_.cluster + "`";
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        line = "handshake with " + options_.coordinator +
               " failed: the peer does not hold the secret key of --coordinator-key (wrong key, "
               "or not our coordinator); nothing it sends is accepted";
        break;
      case ZMQ_EVENT_DISCONNECTED:
        if (!handshake_done_) {
          // A CURVE server that cannot open our HELLO (it does not hold the secret key of the
          // key we pinned) just closes the connection.
          what = ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
          line = "handshake with " + options_.coordinator +
                 " failed: the peer does not hold the secret key of --coordinator-key (wrong "
                 "key, or not our coordinator); nothing it sends is accepted";
          break;
        }
        handshake_done_ = false;
        line = "connection to the coordinator at " + options_.coordinator + " closed";
        error = false;
        break;
      default:
        continue;
    }
    // A peer with the wrong key fails every reconnect (10 a second at first): a line per
    // reason every 30 s at most.
    auto now = Clock::now();
    auto& last = monitor_logged_[what];
    if (last != Clock::time_point{} && now - last < std::chrono::seconds(30)) continue;
    last = now;
    if (error) {
      spdlog::error("{}", line);
    } else {
      spdlog::info("{}", line);
    }
  }
}

void Agent::handleReregister(schema::Reregister::Reader msg) {
  if (msg.getEpoch() < records_->highestEpoch()) return;     // an old coordinator's echo
  if (epoch_ == 0 && Clock::now() < next_register_) return;  // a register is already out
  spdlog::info("coordinator epoch {} asks us to register again", msg.getEpoch());
  epoch_ = 0;
  sendRegister();
}

void Agent::handleCommand(schema::StageCommand::Reader msg) {
  StageKey key = keyOf(msg.getRef());
  if (!isValidDeploymentId(key.deployment) || !isValidStageId(key.stage) ||
      key.stage.rfind(options_.cluster + "/", 0) != 0 || key.nonce.size() > 128) {
    ++dropped_frames_;
    spdlog::warn("dropped a command with a bad id: {}", common::loggable(key.toString()));
    return;
  }
  if (!acceptEpoch(msg.getEpoch(), "a command")) {
    // Answered, so a sender stuck in the past learns it; not recorded, so this run's copy of
    // the same stage is still run (or answered from the record) when it comes.
    StageRecord refused;
    refused.key = key;
    refused.state = RecordState::kFinished;
    refused.outcome = Outcome::REFUSED;
    refused.message = "command from coordinator epoch " + std::to_string(msg.getEpoch()) +
                      ", older than epoch " + std::to_string(records_->highestEpoch()) +
                      " already seen: not run";
    refused.started_ms = refused.finished_ms = nowMs();
    sendResult(refused, msg.getEpoch());
    return;
  }
  if (auto run = running_.find(key); run != running_.end()) {
    // A repeat while it runs: the result will follow. A stage started before nonces existed
    // (the agent was upgraded first) takes the one this copy brings.
    if (run->second.record.key.nonce.empty()) run->second.record.key.nonce = key.nonce;
    return;
  }
  if (auto existing = records_->find(key)) {
    // Already ran (or was interrupted): answer from the record, never run twice.
    spdlog::info("stage {} repeated: answering from the record ({})", key.toString(),
                 outcomeName(existing->outcome));
    // With this command's nonce: a record written before nonces existed has none.
    StageRecord answer = *existing;
    answer.key.nonce = key.nonce;
    sendResult(answer, msg.getEpoch());
    return;
  }
  // Any stop request, also one that came while this loop turn was polling (stopNow() begins
  // the drain only at the top of the next turn).
  if (g_stop_requests.load() > 0) {
    // Neither recorded nor answered: after our restart the coordinator sees we do not hold it
    // and sends it again, to the agent that will run it.
    ++commands_deferred_;
    spdlog::info("stage {} not started: the agent is stopping ({} deferred so far)", key.toString(),
                 commands_deferred_);
    return;
  }
  StageRecord record;
  record.key = key;
  record.state = RecordState::kStarted;
  record.started_ms = nowMs();
  // The record is durable before the step starts: a crash from here on is
  // reported as "unknown", never run again.
  Status s = records_->put(record);
  if (!s.ok()) {
    spdlog::error("cannot record stage {}: {}; refusing it", key.toString(), s.toString());
    record.state = RecordState::kFinished;
    record.outcome = Outcome::REFUSED;
    record.message = "agent cannot write its state dir: " + s.message();
    sendResult(record, msg.getEpoch());
    return;
  }
  // Crash test: the record says "started" and nothing runs yet; after a restart the step must
  // be reported unknown, not run.
  FLOTILLA_FAILPOINT("agent.after_record_started_before_spawn");
  StepCommand command{key, msg, {}};
  for (auto kv : msg.getEnv()) command.env[toStd(kv.getKey())] = toStd(kv.getValue());
  auto environment = options_.labels.find("environment");
  command.env["FLOTILLA_ENVIRONMENT"] =
      environment == options_.labels.end() ? "" : environment->second;
  Driver* driver = driverFor(msg);
  ArtifactCapture artifact;
  if (driver == &script_driver_ && msg.getStep() == common::Step::BUILD) {
    auto path = artifact.prepare(options_.state_dir, key, options_.launch.run_as);
    if (path.ok()) command.env["FLOTILLA_ARTIFACT_FILE"] = *path;
    if (!path.ok()) {
      spdlog::warn("stage {}: no artifact file: {}", key.toString(), path.status().message());
    }
  }
  auto step = driver != nullptr
                  ? driver->start(command, wakeLoop)
                  : common::StatusOr<std::unique_ptr<StepRun>>(Status::InvalidArgument(
                        "unknown step " + std::to_string(static_cast<int>(msg.getStep())) +
                        " (from a newer coordinator?): not run"));
  if (!step.ok()) {
    record.state = RecordState::kFinished;
    record.outcome = Outcome::REFUSED;
    record.message = step.status().message();
    record.finished_ms = nowMs();
    records_->put(record).ignoreError();  // the result below still tells the coordinator
    sendResult(record, msg.getEpoch());
    return;
  }
  Running run;
  run.step = std::move(step).value();
  if (run.step->group() > 0) {
    record.pgid = run.step->group();
    record.start_ticks = run.step->groupStartTicks();
    // Second write, with the process group: a crash before it leaves a step
    // reported unknown whose leftovers cannot be found (a window of one fsync).
    Status recorded = records_->put(record);
    if (!recorded.ok()) spdlog::warn("stage {}: {}", key.toString(), recorded.toString());
  }
  run.record = record;
  run.started = Clock::now();
  run.timeout = msg.getTimeoutMs() > 0 ? std::chrono::milliseconds(msg.getTimeoutMs())
                                       : std::chrono::milliseconds(std::chrono::hours(24));
  run.deadline = run.started + run.timeout;
  run.log_fd = records_->openLog(key);
  run.artifact = std::move(artifact);
  running_.emplace(key, std::move(run));
}

Driver* Agent::driverFor(schema::StageCommand::Reader msg) {
  // A step this agent does not know (a newer coordinator's) is never run as a script.
  if (msg.getStep() > common::kLastStep) return nullptr;
  // Without a ProcessSpec a shift, an analysis and a bake are the script driver's.
  if (msg.hasProcess() || common::isProcessStep(msg.getStep())) return &process_driver_;
  return &script_driver_;
}

void Agent::handleAbort(schema::Abort::Reader msg) {
  StageKey key = keyOf(msg.getRef());
  if (!isValidDeploymentId(key.deployment) || !isValidStageId(key.stage)) {
    ++dropped_frames_;
    return;
  }
  if (!acceptEpoch(msg.getEpoch(), "an abort")) return;
  auto it = running_.find(key);
  if (it != running_.end()) {
    Running& run = it->second;
    if (run.record.key.nonce.empty()) run.record.key.nonce = key.nonce;
    if (!run.aborted) {
      run.aborted = true;
      run.abort_reason = toStd(msg.getReason());
      if (!run.timed_out) run.step->stop(Clock::now());
      spdlog::info("stage {} aborted: {}", key.toString(), common::loggable(run.abort_reason));
    }
    return;
  }
  if (auto existing = records_->find(key)) {
    StageRecord answer = *existing;
    answer.key.nonce = key.nonce;  // as for a repeated command
    sendResult(answer, msg.getEpoch());
    return;
  }
  // Never got the command: record it as aborted so a late copy of the
  // command is answered "aborted" instead of being run.
  StageRecord record;
  record.key = key;
  record.state = RecordState::kFinished;
  record.outcome = Outcome::ABORTED;
  record.message = "aborted before it started";
  record.started_ms = record.finished_ms = nowMs();
  records_->put(record).ignoreError();  // answered either way
  sendResult(record, msg.getEpoch());
}

// ---- Steps under way ----------------------------------------------------------------------

void Agent::pollSteps() {
  auto now = Clock::now();
  std::vector<StageKey> done;
  for (auto& [key, run] : running_) {
    if (pollStep(key, run, now)) done.push_back(key);
  }
  for (const auto& k : done) {
    auto it = running_.find(k);
    if (it->second.log_fd >= 0) ::close(it->second.log_fd);
    running_.erase(it);
  }
}

void Agent::collect(Running& run) {
  std::vector<std::string> lines;
  std::vector<AlertReport> alerts;
  std::vector<FiguresReport> figures;
  run.step->collect(lines, alerts, figures);
  for (auto& l : lines) {
    if (run.log_fd >= 0) {
      std::string out = l + "\n";
      ssize_t n = ::write(run.log_fd, out.data(), out.size());
      (void)n;  // the log file is a convenience; the coordinator has the lines
    }
    if (!l.empty()) run.last_line = l;
    run.artifact.onLine(l);
    if (run.lines_sent + run.pending_lines.size() < options_.max_output_lines) {
      run.pending_lines.push_back(std::move(l));
    } else {
      ++run.lines_dropped;
    }
  }
  for (const AlertReport& alert : alerts) sendAlert(run.record.key, alert);
  for (const FiguresReport& f : figures) sendFigures(run.record.key, f);
}

bool Agent::pollStep(const StageKey& key, Running& run, Clock::time_point now) {
  collect(run);
  flushOutput(run, false);
  if (!run.timed_out && !run.aborted && now >= run.deadline) {
    run.timed_out = true;
    run.step->stop(now);
    spdlog::warn("stage {} timed out: stopping it", key.toString());
  }
  std::optional<StepEnd> end = run.step->poll(now);
  if (!end) return false;
  collect(run);
  flushOutput(run, true);
  // A stopped step that ended anyway (it finished before the stop reached it) keeps its end.
  if (run.timed_out && end->outcome != Outcome::SUCCEEDED) {
    std::string message = "timed out after " + std::to_string(run.timeout.count()) + " ms";
    if (!run.last_line.empty()) message += "; last output: " + run.last_line;
    finish(run, Outcome::TIMED_OUT, end->exit_code, message);
  } else if (run.aborted && end->outcome == Outcome::ABORTED) {
    finish(run, Outcome::ABORTED, end->exit_code, "aborted: " + run.abort_reason);
  } else {
    finish(run, end->outcome, end->outcome == Outcome::SUCCEEDED ? 0 : end->exit_code,
           end->message);
  }
  return true;
}

void Agent::finish(Running& run, Outcome outcome, int exit_code, const std::string& message) {
  // Crash test: the step ended but the record still says "started".
  FLOTILLA_FAILPOINT("agent.after_child_exit_before_record");
  run.record.state = RecordState::kFinished;
  run.record.outcome = outcome;
  run.record.exit_code = exit_code;
  run.record.message = message.size() > 1024 ? message.substr(0, 1024) : message;
  run.record.finished_ms = nowMs();
  const std::string artifact = run.artifact.active() ? run.artifact.finish() : "";
  if (outcome == Outcome::SUCCEEDED) run.record.artifact = artifact;
  Status s = records_->put(run.record);
  if (!s.ok()) {
    // Still report it: the coordinator must not wait forever. After a
    // restart the "started" record makes the step "unknown", not re-run.
    spdlog::error("cannot record the end of {}: {}", run.record.key.toString(), s.toString());
  }
  // Crash test: recorded, not reported; the result must reach the coordinator from the record.
  FLOTILLA_FAILPOINT("agent.after_record_before_result");
  spdlog::info("stage {} {}: {}", run.record.key.toString(), outcomeName(outcome),
               common::loggable(run.record.message));
  sendResult(run.record, epoch_);
}

}  // namespace flotilla::agent
