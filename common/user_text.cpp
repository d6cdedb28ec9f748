// User text as it appears in a message.
#include "common/user_text.hpp"

#include <algorithm>
#include <cstddef>

namespace flotilla::common {
namespace {

// User text quoted back in a message is cut so a huge value cannot blow up the report.
constexpr size_t kMaxQuotedBytes = 64;

void appendHexEscape(std::string* out, unsigned char byte) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += "\\x";
  *out += kHex[byte >> 4];
  *out += kHex[byte & 0xf];
}

}  // namespace

std::string quote(std::string_view text) {
  size_t length = std::min(text.size(), kMaxQuotedBytes);
  while (length > 0 && length < text.size() &&
         (static_cast<unsigned char>(text[length]) & 0xC0) == 0x80) {
    --length;
  }
  std::string out = "\"";
  for (char c : text.substr(0, length)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      appendHexEscape(&out, byte);
    } else {
      out += c;
    }
  }
  out += '"';
  if (length < text.size()) out += "...";
  return out;
}

std::string printableMessage(std::string_view message) {
  std::string out;
  for (char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      appendHexEscape(&out, byte);
    }
  }
  return out;
}

}  // namespace flotilla::common
