// The coordinator's ZeroMQ ROUTER for agents.
#include "coordinator/agent_endpoint.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <zmq.h>

#include <cstring>
#include <vector>

#include "common/logging.hpp"
#include "common/zmq_monitor.hpp"
#include "coordinator/log_limit.hpp"

namespace flotilla::coordinator {

using common::Status;

namespace {
// Frames drained per poll before the engine gets to run its timers.
constexpr int kMaxFramesPerPoll = 4096;
constexpr size_t kMaxClosedRemembered = 65536;
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kMonitorEndpoint = "inproc://flotilla-agents-monitor";

LogLimiter& dropLog() {
  static LogLimiter limiter;
  return limiter;
}

// Routing ids the ROUTER makes are binary (a zero byte and a counter): printable for logs.
std::string connectionName(const std::string& id) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : id) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

std::string property(zmq::message_t& msg, const char* name) {
  const char* value = zmq_msg_gets(msg.handle(), name);
  return value == nullptr ? std::string() : std::string(value);
}
}  // namespace

AgentEndpoint::AgentEndpoint(zmq::context_t& context, Metrics& metrics, EndpointSecurity security)
    : context_(context),
      security_(std::move(security)),
      socket_(context, zmq::socket_type::router),
      zap_(context, zmq::socket_type::rep),
      monitor_(context, zmq::socket_type::pair),
      metrics_(metrics) {}

AgentEndpoint::~AgentEndpoint() = default;

Status AgentEndpoint::bind(const std::string& address, KeyCheck check) {
  check_ = std::move(check);
  try {
    // libzmq drops oversized frames (and the connection) before we see them.
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(common::kMaxFrameBytes));
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndhwm, 100000);
    socket_.set(zmq::sockopt::rcvhwm, 100000);
    // libzmq's listen backlog is 100: a fleet reconnecting at once (after a restart, or a
    // network blip) overflows it, and every dropped SYN waits out TCP's retry (1, 3, 7, 15,
    // 31 s). Measured: 10,000 agents took 31.6 s to register with the default. The kernel
    // caps it at net.core.somaxconn.
    socket_.set(zmq::sockopt::backlog, 65535);
    socket_.set(zmq::sockopt::tcp_keepalive, 1);
    socket_.set(zmq::sockopt::tcp_keepalive_idle,
                static_cast<int>(security_.keepalive_idle.count()));
    socket_.set(zmq::sockopt::tcp_keepalive_intvl, 5);
    socket_.set(zmq::sockopt::tcp_keepalive_cnt, 3);
    socket_.set(zmq::sockopt::tcp_maxrt, static_cast<int>(security_.unacked_timeout.count()));
    if (curve()) {
      // The ZAP handler must exist before the first handshake.
      zap_.set(zmq::sockopt::linger, 0);
      zap_.bind(kZapEndpoint);
      socket_.set(zmq::sockopt::curve_server, 1);
      socket_.set(zmq::sockopt::curve_secretkey, security_.secret_key);
      socket_.set(zmq::sockopt::zap_domain, "flotilla");
    }
    if (zmq_socket_monitor(socket_.handle(), kMonitorEndpoint,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0) {
      return Status::Internal(std::string("cannot monitor the agent socket: ") +
                              zmq_strerror(zmq_errno()));
    }
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(kMonitorEndpoint);
    socket_.bind(address);
  } catch (const zmq::error_t& e) {
    return Status::IoError("cannot listen for agents on " + address + ": " + e.what());
  }
  return Status::Ok();
}

std::string AgentEndpoint::boundAddress() const { return socket_.get(zmq::sockopt::last_endpoint); }

bool AgentEndpoint::poll(std::chrono::milliseconds timeout, int wake_fd, const Handler& handler) {
  std::vector<zmq::pollitem_t> items = {
      {static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0},
      {nullptr, wake_fd, ZMQ_POLLIN, 0},
      {static_cast<void*>(monitor_), 0, ZMQ_POLLIN, 0},
  };
  if (curve()) items.push_back({static_cast<void*>(zap_), 0, ZMQ_POLLIN, 0});
  try {
    zmq::poll(items.data(), items.size(), timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("poll: {}", e.what());
    return false;
  }
  // Closed connections first: a frame read after this turn's close events is never taken for
  // one from a live connection whose descriptor was reused.
  drainMonitor();
  if (curve() && (items[3].revents & ZMQ_POLLIN)) answerZap();
  if (items[0].revents & ZMQ_POLLIN) {
    // Until nothing is waiting (a non-blocking receive says so; asking ZMQ_EVENTS before each
    // message cost as much as decoding it).
    for (int i = 0; i < kMaxFramesPerPoll; ++i) {
      if (!receiveOne(handler)) break;
    }
  }
  return (items[1].revents & ZMQ_POLLIN) != 0;
}

void AgentEndpoint::drainMonitor() {
  while (auto event = common::nextMonitorEvent(monitor_)) {
    uint16_t what = event->event;
    const uint32_t value = event->value;
    if (what != ZMQ_EVENT_DISCONNECTED) continue;
    auto it = by_fd_.find(static_cast<int>(value));
    if (it == by_fd_.end()) continue;
    const std::string connection = it->second;
    by_fd_.erase(it);
    open_.erase(connection);
    closed_.insert(connection);
    closed_order_.push_back(connection);
    if (closed_order_.size() > kMaxClosedRemembered) {
      closed_.erase(closed_order_.front());
      closed_order_.pop_front();
    }
  }
}

void AgentEndpoint::answerZap() {
  // One request per turn of the inner loop, until none is waiting.
  while (true) {
    std::vector<zmq::message_t> request;
    try {
      while (true) {
        zmq::message_t part;
        if (!zap_.recv(part, zmq::recv_flags::dontwait)) break;
        bool more = part.more();
        request.push_back(std::move(part));
        if (!more) break;
      }
    } catch (const zmq::error_t& e) {
      spdlog::error("ZAP receive: {}", e.what());
      return;
    }
    if (request.empty()) return;
    // version, request id, domain, address, routing id, mechanism, credentials...
    std::string status = "400";
    std::string text = "refused";
    std::string user;
    if (request.size() >= 7 && request[0].to_string() == "1.0" &&
        request[5].to_string() == "CURVE" && request[6].size() == 32) {
      char key[41];
      zmq_z85_encode(key, static_cast<const uint8_t*>(request[6].data()), 32);
      const std::string address = request[3].to_string();
      if (check_ && check_(key, address)) {
        status = "200";
        text = "OK";
        user = key;
      }
    } else {
      metrics_.frameDropped("bad_handshake");
    }
    std::string request_id = request.size() > 1 ? request[1].to_string() : "";
    try {
      zap_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(status), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(text), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(user), zmq::send_flags::sndmore);
      zap_.send(zmq::str_buffer(""), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      spdlog::error("ZAP reply: {}", e.what());
      return;
    }
  }
}

void AgentEndpoint::dropped(const char* reason, const std::string& peer, const std::string& why) {
  metrics_.frameDropped(reason);
  uint64_t suppressed = 0;
  if (!dropLog().allow(reason, std::chrono::steady_clock::now(), &suppressed)) return;
  spdlog::warn("dropped a frame ({}) from {}: {}{}", reason, common::loggable(peer, 64),
               common::loggable(why),
               suppressed > 0 ? " (and " + std::to_string(suppressed) + " more since)" : "");
}

bool AgentEndpoint::receiveOne(const Handler& handler) {
  // The routing id and the first frame are kept; further frames of a message are read (so the
  // next message starts where it should) and only counted.
  std::vector<zmq::message_t> parts;
  size_t count = 0;
  try {
    while (true) {
      zmq::message_t part;
      if (!socket_.recv(part, zmq::recv_flags::dontwait)) break;
      ++count;
      bool more = part.more();
      if (parts.size() < 2) parts.push_back(std::move(part));
      if (!more) break;
    }
  } catch (const zmq::error_t& e) {
    spdlog::error("receive: {}", e.what());
    return false;
  }
  if (parts.empty()) return false;
  Peer peer;
  peer.connection = parts[0].to_string();
  if (parts.size() < 2) return true;  // a routing id alone cannot happen; nothing to read
  peer.key = property(parts[1], "User-Id");
  peer.address = property(parts[1], "Peer-Address");
  if (closed_.count(peer.connection) == 0 && open_.count(peer.connection) == 0) {
    const int fd = zmq_msg_get(parts[1].handle(), ZMQ_SRCFD);
    if (fd >= 0) {
      open_[peer.connection] = Connection{fd};
      by_fd_[fd] = peer.connection;
    }
  }
  const std::string who = peer.address + " (connection " + connectionName(peer.connection) + ")";
  if (count != 2) {
    dropped("bad_frame_count", who, std::to_string(count - 1) + " frames, expected 1");
    return true;
  }
  auto decoded = common::DecodedEnvelope::decode(parts[1].data(), parts[1].size());
  if (!decoded.ok()) {
    dropped("malformed", who, decoded.status().message());
    return true;
  }
  auto root = (*decoded)->root();
  metrics_.frameReceived(common::messageTypeName(root.which()));
  try {
    handler(peer, root);
  } catch (const kj::Exception& e) {
    // A field the validation walk could not check (e.g. text without its
    // terminator) fails here: drop the message, keep the process.
    dropped("malformed", who, e.getDescription().cStr());
  }
  return true;
}

void AgentEndpoint::send(const std::string& cluster, capnp::MessageBuilder& message) {
  auto bound = bound_.find(cluster);
  if (bound == bound_.end() || bound->second.empty()) {
    metrics_.frameDropped("unbound_cluster");
    spdlog::debug("no connection for {}: frame not sent", cluster);
    return;
  }
  sendTo(bound->second, message);
}

void AgentEndpoint::sendTo(const std::string& connection, capnp::MessageBuilder& message) {
  zmq::message_t body;
  try {
    body = common::encodeFrame(message);
  } catch (const zmq::error_t& e) {
    spdlog::warn("encoding a frame for {}: {}", connectionName(connection), e.what());
    return;
  }
  if (holding_) {
    held_.emplace_back(connection, std::move(body));
    return;
  }
  sendNow(connection, std::move(body));
}

void AgentEndpoint::bindCluster(const std::string& cluster, const std::string& connection) {
  if (connection.empty()) {
    bound_.erase(cluster);
  } else {
    bound_[cluster] = connection;
  }
}

bool AgentEndpoint::connectionOpen(const std::string& connection) const {
  return open_.count(connection) > 0;
}

void AgentEndpoint::dropConnection(const std::string& connection) {
  auto it = open_.find(connection);
  if (it == open_.end()) return;
  // libzmq has no call to close one peer of a ROUTER: shut its TCP connection down under it;
  // the I/O thread sees the connection end and tears it down like any other.
  ::shutdown(it->second.fd, SHUT_RDWR);
}

void AgentEndpoint::release() {
  for (auto& [connection, body] : held_) sendNow(connection, std::move(body));
  held_.clear();
}

void AgentEndpoint::sendNow(const std::string& connection, zmq::message_t body) {
  try {
    zmq::message_t id(connection.data(), connection.size());
    // Never block the engine: an agent that is gone or not draining gets the
    // command again when it registers.
    if (!socket_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
        !socket_.send(body, zmq::send_flags::dontwait)) {
      spdlog::warn("could not queue a frame for connection {}", connectionName(connection));
    }
  } catch (const zmq::error_t& e) {
    spdlog::warn("send to connection {}: {}", connectionName(connection), e.what());
  }
}

}  // namespace flotilla::coordinator
