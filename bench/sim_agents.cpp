// flotilla-sim-agents: many simulated agents in one process, for the scale benchmarks.
//
// Each simulated agent is a real protocol peer: its own ZeroMQ DEALER with the agent's socket
// options (no routing id of its own, ZMTP heartbeats), Cap'n Proto envelopes through
// common/codec (encodeFrame, DecodedEnvelope::decode), the agent's register / heartbeat / stage
// result messages. With --coordinator-key it speaks CurveZMQ as the agent does: a key pair of
// its own (made in memory at start), the coordinator's public key pinned, and the one-time
// enrollment token of its cluster (from --enroll-tokens) in its registers until one is
// accepted. Without it, the NULL mechanism (a coordinator started with --insecure). Its driver does
// no work: a command is answered at once with "succeeded", except that with `hold` set, forward
// steps are kept in flight until the coordinator aborts them (or until `fail CLUSTER` makes that
// cluster report a failure). One thread owns every socket and waits on them with epoll over each
// socket's ZMQ_FD, so a turn costs what is ready, not what is connected (zmq_poll over 2,500
// sockets made the load generator the bottleneck).
//
// The benchmark drives it over stdin/stdout, one line each way:
//   stdin:  stats | reset | hold 0|1 | fail CLUSTER | quit
//   stdout: "ready N" once all N agents are registered; "stats k=v ..." answering `stats`;
//           "failed CLUSTER NS" once the failure was sent (NS: wall clock, ns since the epoch).
// Receipt times are wall-clock nanoseconds, comparable with the benchmark's own clock (same
// host).
#include <capnp/message.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/backoff.hpp"
#include "common/codec.hpp"
#include "common/curve.hpp"

namespace flotilla::bench {
namespace {

using Steady = std::chrono::steady_clock;
using common::toStd;

// Until registered, ask again as the agent does: after 1-2 s, doubling up to 8-16 s.
constexpr auto kRegisterRetryFirst = std::chrono::seconds(2);
constexpr auto kRegisterRetryCap = std::chrono::seconds(16);
// After a Refused, as the agent: soon when the same register may succeed later, slowly when an
// operator has to act.
constexpr auto kRefusedRetry = std::chrono::milliseconds(500);
constexpr auto kRefusedWait = std::chrono::milliseconds(10000);
constexpr uint64_t kRefusalsLogged = 5;
constexpr int kMaxWaitMs = 10;  // also how often the heartbeat and register timers are swept
constexpr uint64_t kStdinTag = UINT64_MAX;

int64_t wallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A forward step kept in flight (hold mode). Its command's StageRef is kept whole: a result
// echoes every field of it as received, as the agent echoes what it was given (a field this
// program does not know, such as a coordinator's nonce, included).
struct HeldStage {
  std::string deployment;
  std::string stage;
  uint32_t attempt = 0;
  uint64_t epoch = 0;
  std::shared_ptr<capnp::MallocMessageBuilder> ref;  // root: the command's StageRef

  static HeldStage of(schema::StageRef::Reader r, uint64_t epoch) {
    HeldStage h{toStd(r.getDeploymentId()), toStd(r.getStageId()), r.getAttempt(), epoch,
                std::make_shared<capnp::MallocMessageBuilder>(64)};
    h.ref->setRoot(r);
    return h;
  }
  bool same(schema::StageRef::Reader r) const {
    return attempt == r.getAttempt() && stage == toStd(r.getStageId()) &&
           deployment == toStd(r.getDeploymentId());
  }
  schema::StageRef::Reader refReader() const { return ref->getRoot<schema::StageRef>().asReader(); }
};

// How the simulated agents authenticate: the NULL mechanism when `coordinator_key` is empty.
struct Security {
  std::string coordinator_key;                       // Z85, pinned
  std::map<std::string, std::string> enroll_tokens;  // cluster -> one-time token
};

struct SimAgent {
  std::string cluster;
  size_t index = 0;  // in SimFleet::agents_
  zmq::socket_t socket;
  std::string enroll_token;  // sent until a register is accepted (CURVE only)
  bool enrolled = false;
  uint64_t epoch = 0;  // 0 = not registered
  Steady::time_point next_heartbeat{};
  Steady::time_point next_register{};
  common::Backoff register_backoff{kRegisterRetryFirst, kRegisterRetryCap, 0};
  std::vector<HeldStage> held;  // forward steps kept in flight (hold mode)
};

struct Stats {
  uint64_t registered = 0;  // agents registered now
  uint64_t commands = 0;
  uint64_t forward_commands = 0;
  uint64_t rollback_commands = 0;
  uint64_t aborts = 0;
  uint64_t results = 0;
  uint64_t heartbeats = 0;
  uint64_t registers = 0;  // registers sent (retries included)
  uint64_t refused = 0;    // registers the coordinator refused
  uint64_t dropped = 0;
  int64_t last_command_ns = 0;
  int64_t last_rollback_ns = 0;
  int64_t last_abort_ns = 0;
  int64_t first_abort_ns = 0;
};

class SimFleet {
 public:
  SimFleet(std::string coordinator, std::vector<std::string> clusters,
           std::map<std::string, std::string> labels, const Security& security, int io_threads,
           int zmtp_heartbeat_ms)
      : coordinator_(std::move(coordinator)), labels_(std::move(labels)), context_(io_threads) {
    // A context holds 1023 sockets by default; this process holds one per agent.
    context_.set(zmq::ctxopt::max_sockets, static_cast<int>(clusters.size()) + 64);
    agents_.reserve(clusters.size());
    for (auto& c : clusters) {
      SimAgent a;
      a.cluster = std::move(c);
      a.index = agents_.size();
      a.register_backoff = common::Backoff(kRegisterRetryFirst, kRegisterRetryCap, a.index + 1);
      a.socket = zmq::socket_t(context_, zmq::socket_type::dealer);
      if (!security.coordinator_key.empty()) {
        // The agent keeps its pair in its state dir; a simulated one lives as long as the
        // process, which is as long as its enrollment is needed.
        char public_key[41];
        char secret_key[41];
        if (zmq_curve_keypair(public_key, secret_key) != 0) {
          throw std::runtime_error(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
        }
        a.socket.set(zmq::sockopt::curve_serverkey, security.coordinator_key);
        a.socket.set(zmq::sockopt::curve_publickey, std::string(public_key));
        a.socket.set(zmq::sockopt::curve_secretkey, std::string(secret_key));
        auto token = security.enroll_tokens.find(a.cluster);
        if (token != security.enroll_tokens.end()) a.enroll_token = token->second;
      }
      // As the agent: ZMTP heartbeats, so a dead connection is noticed without waiting for TCP.
      if (zmtp_heartbeat_ms > 0) {
        a.socket.set(zmq::sockopt::heartbeat_ivl, zmtp_heartbeat_ms);
        a.socket.set(zmq::sockopt::heartbeat_timeout, 3 * zmtp_heartbeat_ms);
      }
      a.socket.set(zmq::sockopt::reconnect_ivl, 100);
      a.socket.set(zmq::sockopt::reconnect_ivl_max, 5000);
      a.socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(common::kMaxFrameBytes));
      a.socket.set(zmq::sockopt::linger, 0);
      a.socket.connect(coordinator_);
      agents_.push_back(std::move(a));
    }
    for (size_t i = 0; i < agents_.size(); ++i) index_[agents_[i].cluster] = i;
  }

  ~SimFleet() {
    if (epoll_ >= 0) ::close(epoll_);
  }

  void run() {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
    // ZMQ_FD is readable when the socket's state may have changed; ZMQ_EVENTS then tells what.
    for (size_t i = 0; i < agents_.size(); ++i) {
      watch(agents_[i].socket.get(zmq::sockopt::fd), i);
    }
    watch(STDIN_FILENO, kStdinTag);
    for (auto& a : agents_) sendRegister(a);
    std::vector<epoll_event> ready(1024);
    bool announced = false;
    std::string input;
    auto last_sweep = Steady::time_point{};
    while (!quit_) {
      auto now = Steady::now();
      if (now - last_sweep >= std::chrono::milliseconds(kMaxWaitMs)) {
        last_sweep = now;
        timers(now);
      }
      checkSent();
      int n = ::epoll_wait(epoll_, ready.data(), static_cast<int>(ready.size()), kMaxWaitMs);
      if (n < 0 && errno != EINTR)
        throw std::runtime_error(std::string("epoll_wait: ") + strerror(errno));
      for (int k = 0; k < n; ++k) {
        const uint64_t tag = ready[static_cast<size_t>(k)].data.u64;
        if (tag != kStdinTag) {
          drain(agents_[tag]);
          continue;
        }
        char buf[4096];
        ssize_t got = ::read(STDIN_FILENO, buf, sizeof(buf));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return;  // the benchmark went away
        input.append(buf, static_cast<size_t>(got));
        size_t nl;
        while ((nl = input.find('\n')) != std::string::npos) {
          control(input.substr(0, nl));
          input.erase(0, nl + 1);
        }
      }
      checkSent();
      if (!announced && stats_.registered == agents_.size()) {
        announced = true;
        std::printf("ready %zu\n", agents_.size());
        std::fflush(stdout);
      }
    }
  }

 private:
  void watch(int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      throw std::runtime_error(std::string("epoll_ctl: ") + strerror(errno));
    }
  }

  // A send may consume the socket's "readable" signal: look at every socket sent on since.
  void checkSent() {
    while (!sent_on_.empty()) {
      std::vector<size_t> batch;
      batch.swap(sent_on_);
      for (size_t i : batch) drain(agents_[i]);
    }
  }

  void timers(Steady::time_point now) {
    for (auto& a : agents_) {
      if (a.epoch != 0 && now >= a.next_heartbeat) {
        capnp::MallocMessageBuilder m;
        auto hb = m.initRoot<schema::Envelope>().initHeartbeat();
        hb.setCluster(a.cluster);
        hb.setEpoch(a.epoch);
        hb.setRunningStages(static_cast<uint32_t>(a.held.size()));
        send(a, m);
        ++stats_.heartbeats;
        a.next_heartbeat = now + heartbeat_;
      } else if (a.epoch == 0 && now >= a.next_register) {
        sendRegister(a);
      }
    }
  }

  void drain(SimAgent& a) {
    while (a.socket.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      zmq::message_t frame;
      if (!a.socket.recv(frame, zmq::recv_flags::dontwait)) break;
      int64_t at = wallNs();
      auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
      if (!decoded.ok()) {
        ++stats_.dropped;
        continue;
      }
      auto env = (*decoded)->root();
      switch (env.which()) {
        case schema::Envelope::REGISTERED: {
          if (a.epoch == 0) ++stats_.registered;
          a.epoch = env.getRegistered().getEpoch();
          a.register_backoff.reset();
          a.enrolled = true;  // the token is spent: never sent again
          auto ms = env.getRegistered().getHeartbeatIntervalMs();
          if (ms >= 100) heartbeat_ = std::chrono::milliseconds(ms);
          // Spread the heartbeats over the interval, as independent agents would be.
          a.next_heartbeat =
              Steady::now() +
              std::chrono::milliseconds(jitter_() % static_cast<uint64_t>(heartbeat_.count() + 1));
          break;
        }
        case schema::Envelope::REREGISTER:
          if (a.epoch != 0) --stats_.registered;
          a.epoch = 0;
          sendRegister(a);
          break;
        case schema::Envelope::REFUSED:
          onRefused(a, env.getRefused());
          break;
        case schema::Envelope::STAGE_COMMAND:
          onCommand(a, env.getStageCommand(), at);
          break;
        case schema::Envelope::ABORT:
          onAbort(a, env.getAbort(), at);
          break;
        default:
          ++stats_.dropped;
          break;
      }
    }
  }

  void onRefused(SimAgent& a, schema::Refused::Reader msg) {
    ++stats_.refused;
    if (stats_.refused <= kRefusalsLogged) {
      std::cerr << a.cluster << ": register refused"
                << (msg.getRetryable() ? " (retryable): " : ": ") << toStd(msg.getReason()) << "\n";
    }
    if (a.epoch != 0) --stats_.registered;
    a.epoch = 0;
    a.next_register = Steady::now() + (msg.getRetryable() ? kRefusedRetry : kRefusedWait);
  }

  void onCommand(SimAgent& a, schema::StageCommand::Reader cmd, int64_t at) {
    ++stats_.commands;
    stats_.last_command_ns = std::max(stats_.last_command_ns, at);
    if (cmd.getStep() == schema::Step::ROLLBACK) {
      ++stats_.rollback_commands;
      stats_.last_rollback_ns = std::max(stats_.last_rollback_ns, at);
      // A repeated rollback is answered again, as the agent answers repeats from its record.
      sendResult(a, cmd.getRef(), cmd.getEpoch(), schema::Outcome::SUCCEEDED, "rolled back");
      return;
    }
    ++stats_.forward_commands;
    if (hold_) {
      for (const auto& x : a.held) {
        if (x.same(cmd.getRef())) return;
      }
      a.held.push_back(HeldStage::of(cmd.getRef(), cmd.getEpoch()));
      return;
    }
    sendResult(a, cmd.getRef(), cmd.getEpoch(), schema::Outcome::SUCCEEDED, "");
  }

  void onAbort(SimAgent& a, schema::Abort::Reader msg, int64_t at) {
    ++stats_.aborts;
    if (stats_.first_abort_ns == 0) stats_.first_abort_ns = at;
    stats_.last_abort_ns = std::max(stats_.last_abort_ns, at);
    const std::string reason = "aborted: " + toStd(msg.getReason());
    auto it = std::find_if(a.held.begin(), a.held.end(),
                           [&](const HeldStage& x) { return x.same(msg.getRef()); });
    if (it == a.held.end()) {
      // The agent answers an abort of a stage it does not run with "aborted" too.
      sendResult(a, msg.getRef(), msg.getEpoch(), schema::Outcome::ABORTED, reason);
      return;
    }
    HeldStage h = std::move(*it);
    a.held.erase(it);
    sendResult(a, h.refReader(), msg.getEpoch(), schema::Outcome::ABORTED, reason);
  }

  void control(const std::string& line) {
    if (line == "stats") {
      std::printf(
          "stats registered=%lu commands=%lu forward=%lu rollbacks=%lu aborts=%lu results=%lu "
          "heartbeats=%lu registers=%lu refused=%lu dropped=%lu last_command_ns=%ld "
          "last_rollback_ns=%ld "
          "first_abort_ns=%ld last_abort_ns=%ld held=%lu\n",
          stats_.registered, stats_.commands, stats_.forward_commands, stats_.rollback_commands,
          stats_.aborts, stats_.results, stats_.heartbeats, stats_.registers, stats_.refused,
          stats_.dropped, stats_.last_command_ns, stats_.last_rollback_ns, stats_.first_abort_ns,
          stats_.last_abort_ns, heldCount());
    } else if (line == "reset") {
      uint64_t registered = stats_.registered;
      stats_ = Stats{};
      stats_.registered = registered;
      for (auto& a : agents_) a.held.clear();
      std::printf("ok\n");
    } else if (line.rfind("hold ", 0) == 0) {
      hold_ = line.substr(5) == "1";
      std::printf("ok\n");
    } else if (line.rfind("fail ", 0) == 0) {
      auto it = index_.find(line.substr(5));
      if (it == index_.end() || agents_[it->second].held.empty()) {
        std::printf("error no held stage for %s\n", line.substr(5).c_str());
      } else {
        SimAgent& a = agents_[it->second];
        HeldStage h = a.held.front();
        a.held.erase(a.held.begin());
        int64_t at = wallNs();
        sendResult(a, h.refReader(), h.epoch, schema::Outcome::FAILED,
                   "exit code 1: simulated failure");
        std::printf("failed %s %ld\n", a.cluster.c_str(), at);
      }
    } else if (line == "quit") {
      quit_ = true;
      return;
    } else {
      std::printf("error unknown command %s\n", line.c_str());
    }
    std::fflush(stdout);
  }

  uint64_t heldCount() const {
    uint64_t n = 0;
    for (const auto& a : agents_) n += a.held.size();
    return n;
  }

  void sendRegister(SimAgent& a) {
    capnp::MallocMessageBuilder m;
    auto reg = m.initRoot<schema::Envelope>().initRegister();
    reg.setCluster(a.cluster);
    auto labels = reg.initLabels(static_cast<unsigned>(labels_.size()));
    unsigned i = 0;
    for (const auto& [k, v] : labels_) {
      labels[i].setKey(k);
      labels[i].setValue(v);
      ++i;
    }
    reg.setAgentVersion("sim-0.1.0");
    reg.initHeld(0);
    if (!a.enrolled && !a.enroll_token.empty()) reg.setEnrollToken(a.enroll_token);
    send(a, m);
    ++stats_.registers;
    a.next_register = Steady::now() + a.register_backoff.next();
  }

  // `ref` as the command (or abort) carried it, every field echoed.
  void sendResult(SimAgent& a, schema::StageRef::Reader ref, uint64_t epoch,
                  schema::Outcome outcome, const std::string& message) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    r.setRef(ref);
    r.setEpoch(epoch);
    r.setOutcome(outcome);
    r.setExitCode(outcome == schema::Outcome::SUCCEEDED ? 0 : 1);
    r.setMessage(message);
    r.setDurationMs(0);
    send(a, m);
    ++stats_.results;
  }

  void send(SimAgent& a, capnp::MessageBuilder& m) {
    zmq::message_t frame = common::encodeFrame(m);
    if (!a.socket.send(frame, zmq::send_flags::dontwait)) ++stats_.dropped;
    sent_on_.push_back(a.index);
  }

  std::string coordinator_;
  std::map<std::string, std::string> labels_;
  zmq::context_t context_;
  std::vector<SimAgent> agents_;
  std::map<std::string, size_t> index_;
  std::vector<size_t> sent_on_;  // agents whose socket was sent on and not looked at since
  int epoll_ = -1;
  std::chrono::milliseconds heartbeat_{1000};
  std::minstd_rand jitter_{42};
  Stats stats_;
  bool hold_ = false;
  bool quit_ = false;
};

int usage() {
  std::cerr << "usage: flotilla-sim-agents --coordinator tcp://127.0.0.1:PORT --prefix NAME-\n"
               "         --first I --count N [--label k=v]... [--io-threads T]\n"
               "         [--coordinator-key KEY --enroll-tokens FILE] [--zmtp-heartbeat-ms MS]\n"
               "Agents are named PREFIX + I..I+N-1, zero-padded to 5 digits.\n"
               "--coordinator-key: speak CurveZMQ, pinning this Z85 public key (NULL mechanism\n"
               "without it). --enroll-tokens: lines \"CLUSTER TOKEN\", the one-time enrollment\n"
               "token each agent presents in its first register.\n"
               "--zmtp-heartbeat-ms: ZMTP PING interval (the agent's 5000; 0: none).\n";
  return 2;
}

// Reads "CLUSTER TOKEN" lines; false when the file cannot be read or a line is malformed.
bool readTokens(const std::string& path, std::map<std::string, std::string>& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string cluster;
  std::string token;
  while (in >> cluster >> token) out[cluster] = token;
  return in.eof();
}

}  // namespace
}  // namespace flotilla::bench

int main(int argc, char** argv) {
  using namespace flotilla::bench;
  std::string coordinator;
  std::string prefix = "sim-";
  int first = 0;
  int count = 0;
  int io_threads = 1;
  int zmtp_heartbeat_ms = 5000;  // as the agent
  std::map<std::string, std::string> labels;
  Security security;
  std::string tokens_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    if (a == "--coordinator") {
      coordinator = v;
    } else if (a == "--prefix") {
      prefix = v;
    } else if (a == "--first") {
      first = std::stoi(v);
    } else if (a == "--count") {
      count = std::stoi(v);
    } else if (a == "--coordinator-key") {
      security.coordinator_key = v;
    } else if (a == "--enroll-tokens") {
      tokens_file = v;
    } else if (a == "--zmtp-heartbeat-ms") {
      zmtp_heartbeat_ms = std::stoi(v);
    } else if (a == "--io-threads") {
      io_threads = std::stoi(v);
    } else if (a == "--label") {
      auto eq = v.find('=');
      if (eq == std::string::npos) return usage();
      labels[v.substr(0, eq)] = v.substr(eq + 1);
    } else {
      return usage();
    }
  }
  if (coordinator.empty() || count <= 0) return usage();
  if (!security.coordinator_key.empty() &&
      !flotilla::common::isCurveKey(security.coordinator_key)) {
    std::cerr << "flotilla-sim-agents: --coordinator-key is not a Z85 CURVE key\n";
    return 2;
  }
  if (!tokens_file.empty()) {
    if (security.coordinator_key.empty()) return usage();
    if (!readTokens(tokens_file, security.enroll_tokens)) {
      std::cerr << "flotilla-sim-agents: cannot read " << tokens_file << "\n";
      return 2;
    }
  }
  // Two descriptors per agent (the TCP connection and the socket's mailbox).
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  std::vector<std::string> clusters;
  for (int i = first; i < first + count; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s%05d", prefix.c_str(), i);
    clusters.emplace_back(name);
  }
  try {
    SimFleet fleet(coordinator, std::move(clusters), std::move(labels), security, io_threads,
                   zmtp_heartbeat_ms);
    fleet.run();
  } catch (const std::exception& e) {
    std::cerr << "flotilla-sim-agents: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
