// Test support, systemd service units (see systemd_unit.hpp). The rules follow systemd 252's
// readers (config_parse, extract_first_word, parse_env_file, replace_env_argv); where systemd
// would warn and carry on (an assignment without a valid name), this refuses.
#include "tests/support/systemd_unit.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/user_text.hpp"
#include "tests/support/files.hpp"

namespace flotilla::support {

using common::quote;
using common::Status;
using common::StatusOr;

namespace {

namespace fs = std::filesystem;

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Shell-style variable names, as systemd checks them (env_name_is_valid).
bool isValidEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Whitespace-separated words with quotes removed and C escapes applied (systemd's
// extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE). `what` names the setting.
StatusOr<std::vector<std::string>> splitWords(std::string_view text, std::string_view what) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char open_quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (open_quote == 0 && isSpace(c)) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (open_quote != 0 && c == open_quote) {
      open_quote = 0;
    } else if (open_quote == 0 && (c == '"' || c == '\'')) {
      open_quote = c;
    } else if (c == '\\') {
      if (i + 1 == text.size()) {
        return Status::InvalidArgument(std::string(what) + ": a '\\' ends " + quote(text));
      }
      const char escaped = text[++i];
      switch (escaped) {
        case '\\':
        case '"':
        case '\'':
        case ' ':
          word += escaped;
          break;
        case 'n':
          word += '\n';
          break;
        case 't':
          word += '\t';
          break;
        default:
          return Status::InvalidArgument(std::string(what) + ": escape \\" + escaped + " in " +
                                         quote(text) + " is not supported by unit_run");
      }
    } else {
      word += c;
    }
  }
  if (open_quote != 0) {
    return Status::InvalidArgument(std::string(what) + ": unterminated quote in " + quote(text));
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

// "\xNN" bytes and '-' for '/': the instance as the program sees it (%I).
std::string unescapeUnitName(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '-') {
      out += '/';
    } else if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'x' &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 3]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 2, 2)), nullptr, 16));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

StatusOr<mode_t> parseOctalMode(std::string_view key, std::string_view value) {
  if (value.empty() || value.size() > 4 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '7'; })) {
    return Status::InvalidArgument(std::string(key) + "=" + std::string(value) +
                                   ": not an octal mode");
  }
  return static_cast<mode_t>(std::stoul(std::string(value), nullptr, 8));
}

StatusOr<bool> parseBoolean(std::string_view key, std::string_view value) {
  for (std::string_view yes : {"1", "yes", "y", "true", "t", "on"}) {
    if (value == yes) return true;
  }
  for (std::string_view no : {"0", "no", "n", "false", "f", "off"}) {
    if (value == no) return false;
  }
  return Status::InvalidArgument(std::string(key) + "=" + std::string(value) + ": not a boolean");
}

// ---- Reading unit files ------------------------------------------------------------------------

// One KEY=VALUE of a [Service] section and where it was written.
struct Assignment {
  std::string key;
  std::string value;
  std::string where;  // "FILE:LINE"
};

// The [Service] assignments of one file, in order. A line whose end is an unescaped '\'
// continues on the next (the '\' becomes a space); comment lines inside a continuation are
// skipped, as systemd does.
StatusOr<std::vector<Assignment>> readServiceSection(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IoError("cannot read " + path);
  std::vector<Assignment> out;
  std::string section;
  std::string pending;
  bool continuing = false;
  int line_no = 0;
  int first_line = 0;
  std::string raw;
  auto handle = [&](const std::string& text, int at) -> Status {
    const std::string line = trim(text);
    if (line.empty() || line.front() == '#' || line.front() == ';') return Status::Ok();
    const std::string where = path + ":" + std::to_string(at);
    if (line.front() == '[') {
      if (line.back() != ']') return Status::InvalidArgument(where + ": bad section header");
      section = std::string(line.substr(1, line.size() - 2));
      return Status::Ok();
    }
    if (section.empty()) return Status::InvalidArgument(where + ": assignment outside a section");
    const size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument(where + ": not KEY=VALUE: " + quote(line));
    }
    if (section == "Service") {
      out.push_back({trim(line.substr(0, eq)), trim(line.substr(eq + 1)), where});
    }
    return Status::Ok();
  };
  while (std::getline(in, raw)) {
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    const std::string lead = trim(raw);
    if (continuing && !lead.empty() && (lead.front() == '#' || lead.front() == ';')) continue;
    if (!continuing) {
      first_line = line_no;
      // A comment line is whole: its trailing '\' continues nothing.
      if (!lead.empty() && (lead.front() == '#' || lead.front() == ';')) continue;
    }
    size_t backslashes = 0;
    while (backslashes < raw.size() && raw[raw.size() - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 1) {
      raw.back() = ' ';
      pending += raw;
      continuing = true;
      continue;
    }
    pending += raw;
    continuing = false;
    if (Status s = handle(pending, first_line); !s.ok()) return s;
    pending.clear();
  }
  if (continuing) {
    if (Status s = handle(pending, first_line); !s.ok()) return s;
  }
  return out;
}

bool isRegularFile(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// A unit file linked to /dev/null is masked.
bool isMasked(const fs::path& path) {
  std::error_code ec;
  return fs::is_symlink(path, ec) && fs::read_symlink(path, ec) == "/dev/null";
}

// The *.conf drop-ins of `dirs` (highest priority first): one per file name, applied in
// file-name order.
std::vector<std::string> dropInsOf(const std::vector<fs::path>& dirs) {
  std::map<std::string, std::string> by_name;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const fs::path& p = entry.path();
      if (p.extension() != ".conf" || !isRegularFile(p)) continue;
      by_name.emplace(p.filename().string(), p.string());  // a higher-priority one stays
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, path] : by_name) out.push_back(path);
  return out;
}

// One [Service] assignment applied to `unit`.
Status apply(ServiceUnit& unit, std::vector<std::string>& exec_starts, const Assignment& a) {
  const std::string& key = a.key;
  auto fail = [&](const Status& s) {
    return Status::InvalidArgument(a.where + ": " + s.message());
  };
  // Settings unit_run does not act on (hardening, restart policy, limits) are left to
  // systemd-analyze verify; only these are read.
  static const std::vector<std::string> kRead = {"Type",
                                                 "Environment",
                                                 "EnvironmentFile",
                                                 "ExecStart",
                                                 "User",
                                                 "Group",
                                                 "UMask",
                                                 "NoNewPrivileges",
                                                 "KillMode",
                                                 "TimeoutStopSec",
                                                 "TimeoutSec",
                                                 "StateDirectory",
                                                 "StateDirectoryMode",
                                                 "WorkingDirectory",
                                                 "InaccessiblePaths"};
  if (std::find(kRead.begin(), kRead.end(), key) == kRead.end()) return Status::Ok();
  StatusOr<std::string> expanded = expandSpecifiers(a.value, unit.name);
  if (!expanded.ok()) return fail(expanded.status());
  const std::string& value = *expanded;

  if (key == "Type") {
    if (!value.empty() && value != "simple" && value != "exec") {
      return Status::InvalidArgument(a.where + ": Type=" + value +
                                     " is not supported by unit_run (simple, exec)");
    }
  } else if (key == "Environment") {
    if (value.empty()) {
      unit.environment.clear();
      return Status::Ok();
    }
    StatusOr<EnvAssignments> vars = parseEnvironmentAssignments(value);
    if (!vars.ok()) return fail(vars.status());
    unit.environment.insert(unit.environment.end(), vars->begin(), vars->end());
  } else if (key == "EnvironmentFile") {
    if (value.empty()) {
      unit.environment_files.clear();
      return Status::Ok();
    }
    OptionalPath ref;
    ref.optional = value.front() == '-';
    ref.path = ref.optional ? value.substr(1) : value;
    if (ref.path.empty() || ref.path.front() != '/') {
      return Status::InvalidArgument(a.where + ": EnvironmentFile=" + value +
                                     ": not an absolute path");
    }
    unit.environment_files.push_back(std::move(ref));
  } else if (key == "ExecStart") {
    if (value.empty()) {
      exec_starts.clear();
    } else {
      exec_starts.push_back(value);
    }
  } else if (key == "User") {
    unit.user = value;
  } else if (key == "Group") {
    unit.group = value;
  } else if (key == "UMask") {
    if (value.empty()) {
      unit.umask = 0022;
      return Status::Ok();
    }
    StatusOr<mode_t> mode = parseOctalMode(key, value);
    if (!mode.ok()) return fail(mode.status());
    unit.umask = *mode;
  } else if (key == "NoNewPrivileges") {
    StatusOr<bool> on = parseBoolean(key, value);
    if (!on.ok()) return fail(on.status());
    unit.no_new_privileges = *on;
  } else if (key == "KillMode") {
    if (value.empty() || value == "control-group") {
      unit.kill_mode = KillMode::kControlGroup;
    } else if (value == "process") {
      unit.kill_mode = KillMode::kProcess;
    } else if (value == "mixed") {
      unit.kill_mode = KillMode::kMixed;
    } else {
      return Status::InvalidArgument(a.where + ": KillMode=" + value +
                                     " is not supported by unit_run");
    }
  } else if (key == "TimeoutStopSec" || key == "TimeoutSec") {
    if (value.empty()) {
      unit.timeout_stop = 90s;
      return Status::Ok();
    }
    StatusOr<std::chrono::milliseconds> span = parseTimeSpan(value);
    if (!span.ok()) return fail(span.status());
    unit.timeout_stop = *span;
  } else if (key == "StateDirectory") {
    if (value.empty()) {
      unit.state_directories.clear();
      return Status::Ok();
    }
    StatusOr<std::vector<std::string>> dirs = splitWords(value, key);
    if (!dirs.ok()) return fail(dirs.status());
    for (const std::string& dir : *dirs) {
      const fs::path p(dir);
      if (p.is_absolute() || dir.find(':') != std::string::npos ||
          std::any_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; })) {
        return Status::InvalidArgument(a.where + ": StateDirectory=" + dir +
                                       ": must be a relative path without '..' or ':'");
      }
      unit.state_directories.push_back(dir);
    }
  } else if (key == "StateDirectoryMode") {
    StatusOr<mode_t> mode = parseOctalMode(key, value.empty() ? "0755" : value);
    if (!mode.ok()) return fail(mode.status());
    unit.state_directory_mode = *mode;
  } else if (key == "InaccessiblePaths") {
    if (value.empty()) {
      unit.inaccessible_paths.clear();
      return Status::Ok();
    }
    StatusOr<std::vector<std::string>> paths = splitWords(value, key);
    if (!paths.ok()) return fail(paths.status());
    for (const std::string& entry : *paths) {
      OptionalPath path;
      path.optional = entry.front() == '-';
      path.path = path.optional ? entry.substr(1) : entry;
      if (path.path.empty() || path.path.front() != '/') {
        return Status::InvalidArgument(a.where + ": InaccessiblePaths=" + entry +
                                       ": not an absolute path (a '+' prefix is not supported)");
      }
      unit.inaccessible_paths.push_back(std::move(path));
    }
  } else if (key == "WorkingDirectory") {
    unit.working_directory_optional = !value.empty() && value.front() == '-';
    unit.working_directory = unit.working_directory_optional ? value.substr(1) : value;
    const std::string& dir = unit.working_directory;
    if (!dir.empty() && dir != "~" && dir.front() != '/') {
      return Status::InvalidArgument(a.where + ": WorkingDirectory=" + value +
                                     ": not an absolute path or ~");
    }
  }
  return Status::Ok();
}

// The prefixes ExecStart may carry in systemd; unit_run runs none of them.
Status checkNoExecPrefix(std::string_view command) {
  const std::string cmd = trim(std::string(command));
  if (!cmd.empty() && std::string_view("-@+!:|").find(cmd.front()) != std::string_view::npos) {
    return Status::InvalidArgument(std::string("ExecStart prefix '") + cmd.front() + "' in " +
                                   quote(cmd) + " is not supported by unit_run");
  }
  return Status::Ok();
}

}  // namespace

// ---- Names and specifiers ----------------------------------------------------------------------

StatusOr<UnitName> parseUnitName(std::string_view name) {
  const std::string_view kSuffix = ".service";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix ||
      name.find('/') != std::string_view::npos) {
    return Status::InvalidArgument("unit " + quote(name) + ": unit_run starts NAME.service units");
  }
  UnitName out;
  out.full = std::string(name);
  out.suffix = std::string(kSuffix);
  const std::string_view stem = name.substr(0, name.size() - kSuffix.size());
  const size_t at = stem.find('@');
  if (at == std::string_view::npos) {
    out.prefix = std::string(stem);
    return out;
  }
  out.prefix = std::string(stem.substr(0, at));
  out.instance = std::string(stem.substr(at + 1));
  if (out.prefix.empty() || out.instance.empty()) {
    return Status::InvalidArgument("unit " + quote(name) +
                                   ": a template needs an instance (NAME@INSTANCE.service)");
  }
  out.is_instance = true;
  return out;
}

StatusOr<std::string> expandSpecifiers(std::string_view value, const UnitName& name) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out += value[i];
      continue;
    }
    if (i + 1 == value.size()) {
      return Status::InvalidArgument("a '%' ends " + quote(value) + " (write %% for '%')");
    }
    const char spec = value[++i];
    switch (spec) {
      case 'i':
        out += name.instance;
        break;
      case 'I':
        out += unescapeUnitName(name.instance);
        break;
      case 'n':
        out += name.full;
        break;
      case 'N':
        out += name.full.substr(0, name.full.size() - name.suffix.size());
        break;
      case 'p':
        out += name.prefix;
        break;
      case '%':
        out += '%';
        break;
      default:
        return Status::InvalidArgument(std::string("specifier %") + spec + " in " + quote(value) +
                                       " is not supported by unit_run (%i %I %n %N %p %%)");
    }
  }
  return out;
}

// ---- Values ------------------------------------------------------------------------------------

StatusOr<std::chrono::milliseconds> parseTimeSpan(std::string_view text) {
  struct Unit {
    std::string_view name;
    int64_t usec;
  };
  static constexpr int64_t kSec = 1'000'000;
  static const std::vector<Unit> kUnits = {{"us", 1},
                                           {"usec", 1},
                                           {"ms", 1000},
                                           {"msec", 1000},
                                           {"s", kSec},
                                           {"sec", kSec},
                                           {"second", kSec},
                                           {"seconds", kSec},
                                           {"m", 60 * kSec},
                                           {"min", 60 * kSec},
                                           {"minute", 60 * kSec},
                                           {"minutes", 60 * kSec},
                                           {"h", 3600 * kSec},
                                           {"hr", 3600 * kSec},
                                           {"hour", 3600 * kSec},
                                           {"hours", 3600 * kSec},
                                           {"d", 86400 * kSec},
                                           {"day", 86400 * kSec},
                                           {"days", 86400 * kSec},
                                           {"w", 604800 * kSec},
                                           {"week", 604800 * kSec},
                                           {"weeks", 604800 * kSec}};
  const std::string span_text = trim(std::string(text));
  const std::string_view span = span_text;
  const std::string bad = "invalid time span " + quote(text);
  if (span == "infinity") return std::chrono::milliseconds::max();
  if (span.empty()) return Status::InvalidArgument("empty time span");
  int64_t total_usec = 0;
  size_t i = 0;
  while (i < span.size()) {
    while (i < span.size() && isSpace(span[i])) ++i;
    if (i == span.size()) break;
    const size_t start = i;
    int64_t whole = 0;
    while (i < span.size() && std::isdigit(static_cast<unsigned char>(span[i]))) {
      if (i - start >= 12) return Status::InvalidArgument(bad + ": too large");
      whole = whole * 10 + (span[i++] - '0');
    }
    // A fraction ("1.5s"), to the microsecond.
    int64_t fraction_usec = 0;
    bool has_fraction = false;
    if (i < span.size() && span[i] == '.') {
      ++i;
      int64_t scale = kSec / 10;
      while (i < span.size() && std::isdigit(static_cast<unsigned char>(span[i]))) {
        fraction_usec += (span[i++] - '0') * scale;
        scale /= 10;
        has_fraction = true;
      }
    }
    if (i == start || (span[start] == '.' && !has_fraction)) {
      return Status::InvalidArgument(bad + ": expected a number");
    }
    while (i < span.size() && isSpace(span[i])) ++i;
    const size_t unit_start = i;
    while (i < span.size() && std::isalpha(static_cast<unsigned char>(span[i]))) ++i;
    const std::string_view unit_name = span.substr(unit_start, i - unit_start);
    int64_t unit_usec = kSec;  // a bare number is seconds
    if (!unit_name.empty()) {
      auto it = std::find_if(kUnits.begin(), kUnits.end(),
                             [&](const Unit& u) { return u.name == unit_name; });
      if (it == kUnits.end()) {
        return Status::InvalidArgument(bad + ": unknown unit " + quote(unit_name));
      }
      unit_usec = it->usec;
    }
    total_usec += whole * unit_usec + fraction_usec * unit_usec / kSec;
  }
  return std::chrono::milliseconds(total_usec / 1000);
}

StatusOr<EnvAssignments> parseEnvironmentAssignments(std::string_view value) {
  StatusOr<std::vector<std::string>> words = splitWords(value, "Environment");
  if (!words.ok()) return words.status();
  EnvAssignments out;
  for (const std::string& word : *words) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos || !isValidEnvName(std::string_view(word).substr(0, eq))) {
      return Status::InvalidArgument("Environment: " + quote(word) + " is not NAME=VALUE");
    }
    out.emplace_back(word.substr(0, eq), word.substr(eq + 1));
  }
  return out;
}

StatusOr<EnvAssignments> parseEnvironmentFile(std::string_view text) {
  enum class State {
    kPreKey,       // start of a line
    kKey,          // in the name
    kPreValue,     // after '=' or a closing quote: whitespace skipped
    kValue,        // unquoted value
    kValueEscape,  // after an unquoted '\'
    kSingleQuote,
    kDoubleQuote,
    kDoubleQuoteEscape,
    kComment,
  };
  EnvAssignments out;
  State state = State::kPreKey;
  std::string key;
  std::string value;
  size_t value_kept = 0;  // unquoted trailing whitespace is cut back to this length
  int line = 1;
  auto push = [&]() -> Status {
    const std::string name = trim(key);
    if (!isValidEnvName(name)) {
      return Status::InvalidArgument("line " + std::to_string(line) + ": " + quote(name) +
                                     " is not a variable name");
    }
    out.emplace_back(name, value);
    key.clear();
    value.clear();
    value_kept = 0;
    return Status::Ok();
  };
  for (const char c : text) {
    const bool newline = c == '\n' || c == '\r';
    switch (state) {
      case State::kPreKey:
        if (c == '#' || c == ';') {
          state = State::kComment;
        } else if (!isSpace(c)) {
          state = State::kKey;
          key += c;
        }
        break;
      case State::kKey:
        if (newline) {
          return Status::InvalidArgument("line " + std::to_string(line) + ": " + quote(trim(key)) +
                                         " is not NAME=VALUE");
        }
        if (c == '=') {
          state = State::kPreValue;
        } else {
          key += c;
        }
        break;
      case State::kPreValue:
        if (newline) {
          if (Status s = push(); !s.ok()) return s;
          state = State::kPreKey;
        } else if (c == '\'') {
          state = State::kSingleQuote;
        } else if (c == '"') {
          state = State::kDoubleQuote;
        } else if (c == '\\') {
          state = State::kValueEscape;
        } else if (!isSpace(c)) {
          state = State::kValue;
          value += c;
          value_kept = value.size();
        }
        break;
      case State::kValue:
        if (newline) {
          value.resize(value_kept);
          if (Status s = push(); !s.ok()) return s;
          state = State::kPreKey;
        } else if (c == '\\') {
          state = State::kValueEscape;
        } else {
          value += c;
          if (!isSpace(c)) value_kept = value.size();
        }
        break;
      case State::kValueEscape:
        state = State::kValue;
        if (!newline) value += c;  // an escaped newline continues the line
        value_kept = value.size();
        break;
      case State::kSingleQuote:
        if (c == '\'') {
          state = State::kPreValue;
          value_kept = value.size();
        } else {
          value += c;
        }
        break;
      case State::kDoubleQuote:
        if (c == '"') {
          state = State::kPreValue;
          value_kept = value.size();
        } else if (c == '\\') {
          state = State::kDoubleQuoteEscape;
        } else {
          value += c;
        }
        break;
      case State::kDoubleQuoteEscape:
        state = State::kDoubleQuote;
        if (c == '"' || c == '\\' || c == '`' || c == '$') {
          value += c;
        } else if (c != '\n') {
          value += '\\';
          value += c;
        }
        break;
      case State::kComment:
        if (newline) state = State::kPreKey;
        break;
    }
    if (c == '\n') ++line;
  }
  switch (state) {
    case State::kPreKey:
    case State::kComment:
      break;
    case State::kKey:
      return Status::InvalidArgument("line " + std::to_string(line) + ": " + quote(trim(key)) +
                                     " is not NAME=VALUE");
    case State::kSingleQuote:
    case State::kDoubleQuote:
    case State::kDoubleQuoteEscape:
      return Status::InvalidArgument("line " + std::to_string(line) + ": unterminated quote");
    case State::kValue:
    case State::kPreValue:
    case State::kValueEscape:
      if (state == State::kValue) value.resize(value_kept);
      if (Status s = push(); !s.ok()) return s;
      break;
  }
  return out;
}

StatusOr<std::vector<std::string>> expandExecStart(std::string_view command,
                                                   const Environment& env) {
  if (Status s = checkNoExecPrefix(command); !s.ok()) return s;
  StatusOr<std::vector<std::string>> words = splitWords(command, "ExecStart");
  if (!words.ok()) return words.status();
  if (words->empty()) return Status::InvalidArgument("ExecStart is empty");
  auto valueOf = [&](const std::string& name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  std::vector<std::string> argv;
  for (const std::string& word : *words) {
    if (word == ";") {
      return Status::InvalidArgument("ExecStart: several commands (';') are not supported");
    }
    // "$NAME" as a whole word: the value's words.
    if (word.size() > 1 && word[0] == '$' && word[1] != '{' && word[1] != '$') {
      const std::string name = word.substr(1);
      if (!isValidEnvName(name)) {
        return Status::InvalidArgument("ExecStart: " + quote(word) +
                                       " is not $NAME (write ${NAME} inside a word)");
      }
      const std::string value = valueOf(name);
      if (value.find_first_of("\"'\\") != std::string::npos) {
        return Status::InvalidArgument("ExecStart: $" + name + " holds quotes or '\\' (" +
                                       quote(value) + "): unit_run does not unquote them");
      }
      std::istringstream split(value);
      for (std::string part; split >> part;) argv.push_back(part);
      continue;
    }
    std::string out;
    for (size_t i = 0; i < word.size(); ++i) {
      const char next = i + 1 < word.size() ? word[i + 1] : '\0';
      const bool name_follows = std::isalpha(static_cast<unsigned char>(next)) || next == '_';
      if (word[i] != '$' || (next != '$' && next != '{' && !name_follows)) {
        out += word[i];  // a '$' before anything else stays, as in systemd ("$!", "a$")
      } else if (next == '$') {
        out += '$';
        ++i;
      } else if (next == '{') {
        const size_t close = word.find('}', i + 2);
        if (close == std::string::npos) {
          return Status::InvalidArgument("ExecStart: unterminated ${ in " + quote(word));
        }
        const std::string name = word.substr(i + 2, close - i - 2);
        if (!isValidEnvName(name)) {
          return Status::InvalidArgument("ExecStart: ${" + name + "} is not a variable name");
        }
        out += valueOf(name);
        i = close;
      } else {
        return Status::InvalidArgument("ExecStart: $NAME inside the word " + quote(word) +
                                       " is not expanded by systemd; write ${NAME}");
      }
    }
    argv.push_back(std::move(out));
  }
  if (argv.front().empty() || argv.front().front() != '/') {
    return Status::InvalidArgument("ExecStart: the program " + quote(argv.front()) +
                                   " is not an absolute path");
  }
  return argv;
}

// ---- Units -------------------------------------------------------------------------------------

StatusOr<ServiceUnit> loadServiceUnit(std::string_view name, const UnitDirs& dirs) {
  StatusOr<UnitName> parsed = parseUnitName(name);
  if (!parsed.ok()) return parsed.status();
  ServiceUnit unit;
  unit.name = *parsed;

  // The unit file: the admin's copy first, the instance's own file before the template.
  std::vector<fs::path> candidates = {fs::path(dirs.dropin_dir) / unit.name.full,
                                      fs::path(dirs.unit_dir) / unit.name.full};
  if (unit.name.is_instance) {
    candidates.push_back(fs::path(dirs.dropin_dir) / unit.name.templateName());
    candidates.push_back(fs::path(dirs.unit_dir) / unit.name.templateName());
  }
  std::string unit_file;
  for (const fs::path& candidate : candidates) {
    if (isMasked(candidate)) return Status::FailedPrecondition(unit.name.full + " is masked");
    if (isRegularFile(candidate)) {
      unit_file = candidate.string();
      break;
    }
  }
  if (unit_file.empty()) {
    return Status::NotFound("no unit file for " + unit.name.full + " in " + dirs.dropin_dir +
                            " or " + dirs.unit_dir);
  }
  std::vector<fs::path> dropin_dirs = {fs::path(dirs.dropin_dir) / (unit.name.full + ".d")};
  if (unit.name.is_instance) {
    dropin_dirs.push_back(fs::path(dirs.dropin_dir) / (unit.name.templateName() + ".d"));
  }
  unit.files.push_back(unit_file);
  for (const std::string& dropin : dropInsOf(dropin_dirs)) unit.files.push_back(dropin);

  std::vector<std::string> exec_starts;
  for (const std::string& file : unit.files) {
    StatusOr<std::vector<Assignment>> assignments = readServiceSection(file);
    if (!assignments.ok()) return assignments.status();
    for (const Assignment& a : *assignments) {
      if (Status s = apply(unit, exec_starts, a); !s.ok()) return s;
    }
  }
  if (exec_starts.empty()) return Status::InvalidArgument(unit.name.full + " has no ExecStart=");
  if (exec_starts.size() > 1) {
    return Status::InvalidArgument(unit.name.full +
                                   " has several ExecStart= (Type=simple takes one; a drop-in "
                                   "replaces it with an empty ExecStart= first)");
  }
  if (Status s = checkNoExecPrefix(exec_starts.front()); !s.ok()) {
    return Status::InvalidArgument(unit.name.full + ": " + s.message());
  }
  unit.exec_start = exec_starts.front();
  return unit;
}

StatusOr<Environment> unitEnvironment(const ServiceUnit& unit) {
  Environment env;
  for (const auto& [name, value] : unit.environment) env[name] = value;
  for (const OptionalPath& ref : unit.environment_files) {
    if (!isRegularFile(ref.path)) {
      if (ref.optional) continue;
      return Status::NotFound(unit.name.full + ": EnvironmentFile=" + ref.path +
                              " is missing (a '-' prefix would make it optional)");
    }
    std::ifstream in(ref.path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return Status::IoError("cannot read " + ref.path);
    StatusOr<EnvAssignments> vars = parseEnvironmentFile(text.str());
    if (!vars.ok()) return Status::InvalidArgument(ref.path + ": " + vars.status().message());
    for (const auto& [name, value] : *vars) env[name] = value;
  }
  return env;
}

Environment execEnvironment(const ServiceUnit& unit, const Environment& unit_env,
                            const std::optional<Account>& account,
                            const std::optional<std::string>& lang) {
  // systemd 252 on Debian 12 (`systemd-path search-binaries-default`).
  Environment env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}};
  if (lang) env["LANG"] = *lang;
  if (account) {
    env["USER"] = account->name;
    env["LOGNAME"] = account->name;
    env["HOME"] = account->home;
    env["SHELL"] = account->shell;
  }
  std::string state;
  for (const std::string& dir : unit.state_directories) {
    state += (state.empty() ? "" : ":") + ("/var/lib/" + dir);
  }
  if (!state.empty()) env["STATE_DIRECTORY"] = state;
  for (const auto& [name, value] : unit_env) env[name] = value;
  return env;
}

}  // namespace flotilla::support
