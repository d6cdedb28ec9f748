// Server-Sent Events: the reading side of the coordinator's event streams. Fed with the bytes
// HttpClient::stream hands over, so that the format is tested apart from any transport.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace flotilla::common {

// One Server-Sent Event.
struct SseEvent {
  std::string id;
  std::string type;  // "message" when the server sent no "event:" field
  std::string data;  // several data lines are joined with '\n'
};

// Return false to stop the stream early.
using SseHandler = std::function<bool(const SseEvent&)>;

// Incremental parser of the WHATWG event-stream format, for arbitrary chunk boundaries.
class SseParser {
 public:
  // Consumes bytes as they arrive; calls `handler` for each complete event. Returns false as soon
  // as the handler asks to stop.
  bool feed(std::string_view bytes, const SseHandler& handler);

 private:
  bool dispatch(const SseHandler& handler);
  void processLine(std::string_view line);

  std::string buffer_;  // an incomplete trailing line
  SseEvent event_;
  bool has_data_ = false;
};

}  // namespace flotilla::common
