// Reading libzmq socket-monitor events (zmq_socket_monitor over an inproc PAIR), for both
// ends of the agent channel.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <zmq.hpp>

namespace flotilla::common {

struct MonitorEvent {
  uint16_t event = 0;  // ZMQ_EVENT_*
  uint32_t value = 0;  // the event's value: a descriptor, an error or a status code
};

// The next event waiting on `monitor`, without blocking; nothing when none is waiting.
// Malformed events are skipped.
inline std::optional<MonitorEvent> nextMonitorEvent(zmq::socket_t& monitor) {
  while (true) {
    zmq::message_t event;
    zmq::message_t endpoint;
    try {
      if (!monitor.recv(event, zmq::recv_flags::dontwait)) return std::nullopt;
      if (event.more()) (void)monitor.recv(endpoint, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
    if (event.size() < 6) continue;
    MonitorEvent out;
    std::memcpy(&out.event, event.data(), sizeof(out.event));
    std::memcpy(&out.value, static_cast<const char*>(event.data()) + 2, sizeof(out.value));
    return out;
  }
}

}  // namespace flotilla::common
