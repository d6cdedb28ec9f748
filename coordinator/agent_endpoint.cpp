// The coordinator's ZeroMQ ROUTER for agents.
#include "coordinator/agent_endpoint.hpp"

#include <spdlog/spdlog.h>

#include <vector>

namespace flotilla::coordinator {

using common::Status;

namespace {
// Frames drained per poll before the engine gets to run its timers.
constexpr int kMaxFramesPerPoll = 4096;
}  // namespace

AgentEndpoint::AgentEndpoint(zmq::context_t& context, Metrics& metrics)
    : socket_(context, zmq::socket_type::router), metrics_(metrics) {}

Status AgentEndpoint::bind(const std::string& address) {
  try {
    // A restarted agent reconnects under the same routing id (its cluster
    // name) while the old connection may still look alive: hand it over.
    socket_.set(zmq::sockopt::router_handover, 1);
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
    socket_.bind(address);
  } catch (const zmq::error_t& e) {
    return Status::IoError("cannot listen for agents on " + address + ": " + e.what());
  }
  return Status::Ok();
}

std::string AgentEndpoint::boundAddress() const { return socket_.get(zmq::sockopt::last_endpoint); }

bool AgentEndpoint::poll(std::chrono::milliseconds timeout, int wake_fd, const Handler& handler) {
  zmq::pollitem_t items[] = {
      {static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0},
      {nullptr, wake_fd, ZMQ_POLLIN, 0},
  };
  try {
    zmq::poll(items, 2, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("poll: {}", e.what());
    return false;
  }
  if (items[0].revents & ZMQ_POLLIN) {
    // Until nothing is waiting (a non-blocking receive says so; asking ZMQ_EVENTS before each
    // message cost as much as decoding it).
    for (int i = 0; i < kMaxFramesPerPoll; ++i) {
      if (!receiveOne(handler)) break;
    }
  }
  return (items[1].revents & ZMQ_POLLIN) != 0;
}

bool AgentEndpoint::receiveOne(const Handler& handler) {
  std::vector<zmq::message_t> parts;
  try {
    while (true) {
      zmq::message_t part;
      if (!socket_.recv(part, zmq::recv_flags::dontwait)) break;
      bool more = part.more();
      parts.push_back(std::move(part));
      if (!more) break;
    }
  } catch (const zmq::error_t& e) {
    spdlog::error("receive: {}", e.what());
    return false;
  }
  if (parts.empty()) return false;
  std::string identity = parts[0].to_string();
  if (parts.size() != 2) {
    metrics_.frameDropped("bad_frame_count");
    spdlog::warn("dropped a {}-part message from \"{}\" (expected 1 frame)", parts.size() - 1,
                 identity);
    return true;
  }
  auto decoded = common::DecodedEnvelope::decode(parts[1].data(), parts[1].size());
  if (!decoded.ok()) {
    metrics_.frameDropped("malformed");
    spdlog::warn("dropped a frame from \"{}\": {}", identity, decoded.status().message());
    return true;
  }
  auto root = (*decoded)->root();
  metrics_.frameReceived(common::messageTypeName(root.which()));
  try {
    handler(identity, root);
  } catch (const kj::Exception& e) {
    // A field the validation walk could not check (e.g. text without its
    // terminator) fails here: drop the message, keep the process.
    metrics_.frameDropped("malformed");
    spdlog::warn("dropped a frame from \"{}\" while handling it: {}", identity,
                 e.getDescription().cStr());
  }
  return true;
}

void AgentEndpoint::send(const std::string& cluster, capnp::MessageBuilder& message) {
  zmq::message_t body;
  try {
    body = common::encodeFrame(message);
  } catch (const zmq::error_t& e) {
    spdlog::warn("encoding a frame for {}: {}", cluster, e.what());
    return;
  }
  if (holding_) {
    held_.emplace_back(cluster, std::move(body));
    return;
  }
  sendNow(cluster, std::move(body));
}

void AgentEndpoint::release() {
  for (auto& [cluster, body] : held_) sendNow(cluster, std::move(body));
  held_.clear();
}

void AgentEndpoint::sendNow(const std::string& cluster, zmq::message_t body) {
  try {
    zmq::message_t id(cluster.data(), cluster.size());
    // Never block the engine: an agent that is gone or not draining gets the
    // command again when it registers.
    if (!socket_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
        !socket_.send(body, zmq::send_flags::dontwait)) {
      spdlog::warn("could not queue a frame for {}", cluster);
    }
  } catch (const zmq::error_t& e) {
    spdlog::warn("send to {}: {}", cluster, e.what());
  }
}

}  // namespace flotilla::coordinator
