// The rules for names, versions, labels and durations (see rules.hpp).
#include "common/rules.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "common/user_text.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

constexpr size_t kMaxNameLength = 63;
constexpr size_t kMaxVersionLength = 128;
constexpr size_t kMaxLabelKeyLength = 63;
constexpr size_t kMaxLabelValueLength = 128;
constexpr size_t kMaxSelectorLength = 63;
// Each number in a duration is capped so that the sum of all four units fits in int64
// milliseconds: 10^12 * (3600000 + 60000 + 1000 + 1) < 2^63.
constexpr size_t kMaxDurationDigits = 12;

// Largest first: the order formatDuration prints them in and parseDuration requires.
struct DurationUnit {
  std::string_view suffix;
  int64_t ms;
};
constexpr std::array<DurationUnit, 4> kDurationUnits = {{
    {"h", std::chrono::milliseconds(1h).count()},
    {"m", std::chrono::milliseconds(1min).count()},
    {"s", std::chrono::milliseconds(1s).count()},
    {"ms", 1},
}};

bool isLowerOrDigit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isLowerOrDigit(c) || (c >= 'A' && c <= 'Z'); }
bool isPrintableAscii(char c) { return c >= 0x20 && c < 0x7f; }

template <typename Pred>
bool allOf(std::string_view text, Pred pred) {
  return std::all_of(text.begin(), text.end(), pred);
}

}  // namespace

bool isValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name.front() == '-' || name.back() == '-') return false;
  return allOf(name, [](char c) { return isLowerOrDigit(c) || c == '-'; });
}

bool isValidVersion(std::string_view version) {
  if (version.empty() || version.size() > kMaxVersionLength) return false;
  if (version.front() == '.' || version.front() == '-') return false;
  return allOf(version,
               [](char c) { return isAlnum(c) || c == '.' || c == '_' || c == '+' || c == '-'; });
}

bool isValidLabelKey(std::string_view key) {
  return !key.empty() && key.size() <= kMaxLabelKeyLength && allOf(key, [](char c) {
    return isAlnum(c) || c == '.' || c == '_' || c == '/' || c == '-';
  });
}

bool isValidLabelValue(std::string_view value) {
  return value.size() <= kMaxLabelValueLength &&
         allOf(value, [](char c) { return isPrintableAscii(c) && c != ' '; });
}

bool isValidSelectorKey(std::string_view key) {
  return !key.empty() && key.size() <= kMaxSelectorLength && allOf(key, [](char c) {
    return isLowerOrDigit(c) || c == '.' || c == '_' || c == '/' || c == '-';
  });
}

bool isValidSelectorValue(std::string_view value) {
  return !value.empty() && value.size() <= kMaxSelectorLength && allOf(value, isPrintableAscii);
}

StatusOr<std::chrono::milliseconds> parseDuration(const std::string& text) {
  const std::string bad = "invalid duration " + quote(text);
  if (text.empty()) return Status::InvalidArgument("empty duration");
  // Units must come largest first, each at most once: "1h30m" but not "30m1h" or "5m5m", which
  // are more likely typos than intent. `next_unit` is the first unit still allowed.
  size_t next_unit = 0;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    int64_t number = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (i - start == kMaxDurationDigits) return Status::InvalidArgument(bad + ": too large");
      number = number * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start) {
      return Status::InvalidArgument(bad + ": expected a number followed by h, m, s or ms");
    }
    if (i == text.size()) {
      return Status::InvalidArgument(bad + ": a unit is required (h, m, s or ms)");
    }
    // The longest suffix wins, so that "ms" is not read as "m" followed by garbage.
    std::optional<size_t> unit;
    for (size_t u = 0; u < kDurationUnits.size(); ++u) {
      const std::string_view suffix = kDurationUnits[u].suffix;
      if (text.compare(i, suffix.size(), suffix) == 0 &&
          (!unit || suffix.size() > kDurationUnits[*unit].suffix.size())) {
        unit = u;
      }
    }
    if (!unit) return Status::InvalidArgument(bad + ": unknown unit; use h, m, s or ms");
    if (*unit < next_unit) {
      return Status::InvalidArgument(bad + ": units must go from largest to smallest, each once");
    }
    i += kDurationUnits[*unit].suffix.size();
    next_unit = *unit + 1;
    total += number * kDurationUnits[*unit].ms;
  }
  return std::chrono::milliseconds(total);
}

bool isValidHttpUrl(std::string_view url) {
  const bool scheme = url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
  const bool printable = allOf(url, [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  return scheme && printable && url.size() <= kMaxUrlLength && url.find("://") + 3 < url.size();
}

bool isArtifactDigest(std::string_view digest) {
  if (digest.size() != kArtifactDigestLength || digest.rfind("sha256:", 0) != 0) return false;
  return allOf(digest.substr(7),
               [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Status checkFreeText(std::string_view text, std::string_view what, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Status::InvalidArgument(std::string(what) + " is " + std::to_string(text.size()) +
                                   " bytes; at most " + std::to_string(max_bytes));
  }
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t len = 1;
    bool ok = true;
    if (lead < 0x80) {
      ok = lead >= 0x20 ? lead != 0x7f : (lead == '\t' || lead == '\n' || lead == '\r');
    } else {
      // Well-formed sequences only: no overlong forms, surrogates or values past U+10FFFF.
      uint32_t cp = 0;
      uint32_t min = 0;
      if (lead >= 0xC2 && lead <= 0xDF) {
        len = 2, cp = lead & 0x1Fu, min = 0x80;
      } else if (lead >= 0xE0 && lead <= 0xEF) {
        len = 3, cp = lead & 0x0Fu, min = 0x800;
      } else if (lead >= 0xF0 && lead <= 0xF4) {
        len = 4, cp = lead & 0x07u, min = 0x10000;
      } else {
        ok = false;
      }
      if (ok && i + len > text.size()) ok = false;
      for (size_t k = 1; ok && k < len; ++k) {
        const auto next = static_cast<unsigned char>(text[i + k]);
        ok = (next & 0xC0) == 0x80;
        cp = (cp << 6) | (next & 0x3Fu);
      }
      // C1 controls are control characters too.
      if (ok) ok = cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp > 0x9F;
    }
    if (!ok) {
      return Status::InvalidArgument(std::string(what) + " must be UTF-8 text without control " +
                                     "characters (byte " + std::to_string(i) + " is not)");
    }
    i += len;
  }
  return Status::Ok();
}

Status checkHotfixReason(std::string_view reason, std::string_view what) {
  if (reason.find_first_not_of(" \t") == std::string_view::npos) {
    return Status::InvalidArgument(std::string(what) +
                                   " is empty: a hotfix needs a reason (the incident, the fix)");
  }
  Status text = checkFreeText(reason, what, kMaxHotfixReasonBytes);
  if (!text.ok()) return text;
  if (reason.find_first_of("\r\n") != std::string_view::npos) {
    return Status::InvalidArgument(std::string(what) + " must be one line");
  }
  return Status::Ok();
}

std::string formatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    // Negating the minimum would overflow; it is far beyond any real duration anyway.
    ms = ms == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -ms;
  }
  for (const DurationUnit& unit : kDurationUnits) {
    if (ms >= unit.ms) {
      out += std::to_string(ms / unit.ms);
      out += unit.suffix;
      ms %= unit.ms;
    }
  }
  return out;
}

}  // namespace flotilla::common
