// User text as it appears in a message (plan problems, rule refusals): quoted, escaped and cut,
// so that a hostile value can neither break the message nor make it huge, and the message stays
// valid UTF-8 (problems travel on as JSON, which refuses broken UTF-8).
#pragma once

#include <string>
#include <string_view>

namespace flotilla::common {

// `text` in double quotes, '"' and '\' escaped, control bytes as \xNN, cut after 64 bytes (on a
// UTF-8 boundary) with "..." after the closing quote.
std::string quote(std::string_view text);

// Every byte outside printable ASCII as \xNN: for messages of libraries that may embed the
// offending input byte (yaml-cpp's "unknown escape character: \xff").
std::string printableMessage(std::string_view message);

}  // namespace flotilla::common
