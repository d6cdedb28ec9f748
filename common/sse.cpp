// The event-stream format's line rules: fields, comments, and dispatch on a blank line.
#include "common/sse.hpp"

#include <utility>

namespace flotilla::common {

bool SseParser::feed(std::string_view bytes, const SseHandler& handler) {
  buffer_.append(bytes);
  size_t start = 0;
  while (true) {
    size_t newline = buffer_.find('\n', start);
    if (newline == std::string::npos) break;
    std::string_view line(buffer_.data() + start, newline - start);
    start = newline + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (!dispatch(handler)) {
        buffer_.clear();
        return false;
      }
    } else {
      processLine(line);
    }
  }
  buffer_.erase(0, start);
  return true;
}

void SseParser::processLine(std::string_view line) {
  if (line.front() == ':') return;  // a comment, used by servers as a keep-alive
  std::string_view field = line;
  std::string_view value;
  if (auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_.type = value;
  } else if (field == "data") {
    event_.data.append(value);
    event_.data.push_back('\n');
    has_data_ = true;
  } else if (field == "id") {
    event_.id = value;
  }
  // "retry" and unknown fields are ignored, as the format requires.
}

bool SseParser::dispatch(const SseHandler& handler) {
  if (!has_data_) {
    event_.type.clear();
    return true;
  }
  SseEvent event;
  event.id = event_.id;  // the last event id persists across events, per the format
  event.type = event_.type.empty() ? "message" : event_.type;
  event.data = std::move(event_.data);
  event.data.pop_back();  // the newline appended after the last data line
  event_.type.clear();
  event_.data.clear();
  has_data_ = false;
  return handler(event);
}

}  // namespace flotilla::common
