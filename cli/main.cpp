// flotilla: the operator's CLI. Owns the commands, their help text, and how each outcome
// becomes a message and an exit code.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/client.hpp"
#include "cli/render.hpp"

#ifndef FLOTILLA_VERSION
#define FLOTILLA_VERSION "0.1.0"
#endif

namespace flotilla::cli {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr char kDefaultServer[] = "http://127.0.0.1:7780";
constexpr auto kPollInterval = 500ms;
// The design has unfinished deployments survive a coordinator restart, so a long `wait` or
// `watch` rides out a short outage instead of failing the pipeline that runs it. The first
// request gets no such grace: a wrong --server should fail at once.
constexpr auto kOutageGrace = 30s;
constexpr std::size_t kRecentEvents = 5;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;   // the coordinator said no, or the deployment did not succeed
constexpr int kExitTrouble = 2;  // could not find out: unreachable, unreadable file, timeout

// How every command fails: caught once in run(), which prints "flotilla: " + what().
class CliError : public std::runtime_error {
 public:
  CliError(std::string message, int exit_code) : CliError(std::move(message), exit_code, "") {}
  // `transient_reason` non-empty: worth retrying in a polling loop (the coordinator may be
  // restarting); it is the short cause shown meanwhile, e.g. "connection refused".
  CliError(std::string message, int exit_code, std::string transient_reason)
      : std::runtime_error(std::move(message)),
        exit_code_(exit_code),
        transient_reason_(std::move(transient_reason)) {}
  int exitCode() const { return exit_code_; }
  bool transient() const { return !transient_reason_.empty(); }
  const std::string& transientReason() const { return transient_reason_; }

 private:
  int exit_code_;
  std::string transient_reason_;
};

std::string deploymentPath(const std::string& id) { return "/api/v1/deployments/" + urlEscape(id); }

std::string eventsPath(const std::string& id, long long after) {
  std::string path = deploymentPath(id) + "/events";
  if (after > 0) path += "?after=" + std::to_string(after);
  return path;
}

int exitCodeForFinalState(const std::string& state) {
  return state == "succeeded" ? kExitOk : kExitFailed;
}

// The coordinator's API as the commands need it: JSON in, JSON out, every failure a CliError
// with the message a user should read.
class Api {
 public:
  Api(const std::string& server, std::string token, std::string ca_file) : client_(server) {
    client_.setToken(std::move(token));
    client_.setCaFile(std::move(ca_file));
  }

  Client& client() { return client_; }
  const std::string& server() const { return client_.baseUrl(); }

  // `deployment_id` is named in the message when the coordinator does not know it.
  json get(const std::string& path, const std::string& deployment_id = "") {
    return accept(client_.get(path), "GET", path, deployment_id);
  }

  json post(const std::string& path, std::string_view body, const std::string& deployment_id) {
    return accept(client_.post(path, body, "application/json"), "POST", path, deployment_id);
  }

  json del(const std::string& path) { return accept(client_.del(path), "DELETE", path, ""); }

  // For --json: the answer as the server ordered it (json would sort the keys), indented.
  std::string getPretty(const std::string& path, const std::string& deployment_id = "") {
    Result result = client_.get(path);
    accept(result, "GET", path, deployment_id);  // the same checks and messages
    return nlohmann::ordered_json::parse(std::get<Response>(result).body)
        .dump(2, ' ', false, json::error_handler_t::replace);
  }

  json accept(const Result& result, const char* method, const std::string& path,
              const std::string& deployment_id) {
    if (const auto* error = std::get_if<TransportError>(&result)) failTransport(*error);
    const auto& response = std::get<Response>(result);
    if (response.status < 200 || response.status >= 300) {
      failStatus(response, method, path, deployment_id);
    }
    return parseBody(response);
  }

  json parseBody(const Response& response) {
    json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      throw CliError("the coordinator at " + server() +
                         " sent an answer this flotilla (" FLOTILLA_VERSION ") cannot read",
                     kExitTrouble);
    }
    return body;
  }

  [[noreturn]] void failTransport(const TransportError& error) {
    if (error.kind == TransportError::Kind::kTimeout) {
      throw CliError("the coordinator at " + server() + " did not answer (" + error.reason + ")",
                     kExitTrouble, error.reason);
    }
    throw CliError("cannot reach the coordinator at " + server() + " (" + error.reason +
                       "); is flotilla-coordinator running? Set --server or FLOTILLA_SERVER.",
                   kExitTrouble, error.reason);
  }

  [[noreturn]] void failStatus(const Response& response, const char* method,
                               const std::string& path, const std::string& deployment_id) {
    // 502..504 are what proxies and restarting servers answer, 429 a token over its rate
    // limit; 500 is a real server bug.
    const std::string transient =
        (response.status >= 502 && response.status <= 504) || response.status == 429
            ? "HTTP " + std::to_string(response.status)
            : "";
    json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    std::string message = fieldText(body, "error");
    if (message.empty()) {
      // Not the coordinator's error format: most likely --server points somewhere else.
      std::string what = "the server at " + server() + " answered HTTP " +
                         std::to_string(response.status) + " to " + method + " " + path;
      if (response.status == 404) what += "; is --server pointing at a flotilla coordinator?";
      throw CliError(what, kExitFailed, transient);
    }
    if (response.status == 404 && !deployment_id.empty()) {
      throw CliError("no deployment named " + deployment_id, kExitFailed);
    }
    if (response.status == 401) {
      throw CliError(message +
                         ". Set FLOTILLA_TOKEN or --token-file FILE (an admin creates "
                         "tokens with 'flotilla tokens create'; the first one comes from "
                         "'flotilla-coordinator bootstrap-admin')",
                     kExitFailed);
    }
    throw CliError(message, kExitFailed, transient);
  }

 private:
  Client client_;
};

// Tracks a polling loop's trouble: transient failures are tolerated for kOutageGrace once the
// coordinator has answered at least once; anything else is rethrown.
class OutageGuard {
 public:
  void succeeded() {
    answered_ = true;
    outage_since_.reset();
  }

  // Rethrows `error` unless it is worth riding out. Returns the note to show, once per outage:
  // a line every 500 ms would bury the output it interrupts.
  std::string failed(const CliError& error) {
    // A 429 is an answer: the coordinator is there, only busy with this token.
    const bool rate_limited = error.transientReason() == "HTTP 429";
    if ((!answered_ && !rate_limited) || !error.transient()) throw error;
    auto now = SteadyClock::now();
    if (outage_since_ && now - *outage_since_ > kOutageGrace) throw error;
    if (outage_since_) return "";
    outage_since_ = now;
    return "lost contact with the coordinator (" + error.transientReason() +
           "); retrying for up to " +
           formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(kOutageGrace));
  }

 private:
  bool answered_ = false;
  std::optional<SteadyClock::time_point> outage_since_;
};

void printLine(const std::string& line) { std::cout << line << '\n' << std::flush; }

void printNote(const std::string& note) {
  if (!note.empty()) std::cerr << "flotilla: " << note << '\n';
}

// ---- submit -------------------------------------------------------------------------------

std::string readPlanFile(const std::string& file) {
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    throw CliError("cannot read plan file " + file + ": it is a directory", kExitTrouble);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw CliError("cannot read plan file " + file + ": " + std::strerror(errno), kExitTrouble);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw CliError("cannot read plan file " + file + ": read error", kExitTrouble);
  }
  return text.str();
}

std::string planContentType(const std::string& file) {
  std::string extension = std::filesystem::path(file).extension().string();
  for (auto& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (extension == ".json") return "application/json";
  // YAML is the plan's native format (and nearly a superset of JSON), so any other name
  // is sent as YAML rather than refused here; the coordinator has the final word.
  return "application/yaml";
}

int submitCommand(Api& api, const std::string& file) {
  std::string plan = readPlanFile(file);
  const std::string path = "/api/v1/deployments";
  Result result = api.client().post(path, plan, planContentType(file));
  if (const auto* response = std::get_if<Response>(&result); response && response->status == 400) {
    json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
    if (body.is_object() && body.contains("problems") && body["problems"].is_array() &&
        !body["problems"].empty()) {
      for (const auto& line : formatPlanProblems(file, body["problems"])) {
        std::cerr << line << '\n';
      }
      return kExitFailed;
    }
  }
  json body = api.accept(result, "POST", path, "");
  std::string id = fieldText(body, "id");
  if (id.empty()) {
    throw CliError("the coordinator accepted the plan but sent no deployment id", kExitTrouble);
  }
  printLine(id);
  return kExitOk;
}

// ---- status, agents ---------------------------------------------------------------------------

int statusCommand(Api& api, const std::string& id, bool as_json) {
  const auto now = std::chrono::system_clock::now();
  if (id.empty()) {
    if (as_json) {
      printLine(api.getPretty("/api/v1/deployments"));
      return kExitOk;
    }
    json body = api.get("/api/v1/deployments");
    const json& list = body.contains("deployments") ? body["deployments"] : json::array();
    if (!list.is_array() || list.empty()) {
      printLine("No deployments yet. Submit one with: flotilla submit PLAN.yaml");
      return kExitOk;
    }
    std::cout << renderDeploymentList(list, now) << std::flush;
    return kExitOk;
  }
  if (as_json) {
    printLine(api.getPretty(deploymentPath(id), id));
    return kExitOk;
  }
  json detail = api.get(deploymentPath(id), id);
  for (const auto& line : renderDeploymentDetail(detail, now)) std::cout << line << '\n';
  std::cout << std::flush;
  return kExitOk;
}

int agentsCommand(Api& api, bool as_json) {
  if (as_json) {
    printLine(api.getPretty("/api/v1/agents"));
    return kExitOk;
  }
  json body = api.get("/api/v1/agents");
  const json& list = body.contains("agents") ? body["agents"] : json::array();
  if (!list.is_array() || list.empty()) {
    printLine("No agents have registered yet.");
    return kExitOk;
  }
  std::cout << renderAgents(list, std::chrono::system_clock::now()) << std::flush;
  return kExitOk;
}

// ---- approve, rollback, pause, resume, cancel -----------------------------------------------

int actionCommand(Api& api, const std::string& id, const std::string& action,
                  const std::string& what, const std::string& body) {
  json detail = api.post(deploymentPath(id) + "/" + action, body, id);
  printLine(id + ": " + what + " accepted; state is now " + fieldText(detail, "state"));
  return kExitOk;
}

int approveCommand(Api& api, const std::string& id, const std::string& wave) {
  if (wave.empty()) return actionCommand(api, id, "approve", "approval", "");
  return actionCommand(api, id, "approve", "approval of wave " + wave, json{{"wave", wave}}.dump());
}

// ---- events, wait, watch ------------------------------------------------------------------

// Calls `on_event` once per event of deployment `id`, in order, from the first until the
// deployment is final; returns its final Detail. Uses the SSE stream and
// reconnects with ?after= if the stream drops early; falls back to polling when the server
// answers the stream request with plain JSON.
json followEvents(Api& api, const std::string& id, const std::function<void(const json&)>& on_event,
                  const std::function<void(const std::string&)>& on_outage) {
  long long last_seq = 0;
  bool use_stream = true;
  OutageGuard guard;

  auto deliver = [&](const json& event) {
    if (!event.is_object()) return;
    long long seq = event.contains("seq") && event["seq"].is_number_integer()
                        ? event["seq"].get<long long>()
                        : 0;
    if (seq != 0 && seq <= last_seq) return;  // already shown before a reconnect
    if (seq != 0) last_seq = seq;
    on_event(event);
  };
  auto deliverAll = [&](const json& body) {
    if (body.contains("events") && body["events"].is_array()) {
      for (const auto& event : body["events"]) deliver(event);
    }
  };
  const SseHandler on_sse = [&](const SseEvent& sse) {
    json event = json::parse(sse.data, nullptr, /*allow_exceptions=*/false);
    if (!event.is_discarded()) deliver(event);
    guard.succeeded();  // events flowing: a later drop is an outage to ride out, not a bad id
    return true;
  };

  while (true) {
    try {
      const std::string path = eventsPath(id, last_seq);
      if (use_stream) {
        Result result = api.client().stream(path, on_sse);
        const auto* response = std::get_if<Response>(&result);
        const bool was_stream =
            response != nullptr && response->status == 200 && response->body.empty() &&
            response->content_type.find("text/event-stream") != std::string::npos;
        if (response != nullptr && response->status == 503) {
          // Every event stream taken (the coordinator caps them): poll instead.
          use_stream = false;
          deliverAll(api.get(path, id));
        } else if (!was_stream) {
          json body = api.accept(result, "GET", path, id);
          use_stream = false;  // a server without SSE answered with the JSON list
          deliverAll(body);
        }
      } else {
        deliverAll(api.get(path, id));
      }
      json detail = api.get(deploymentPath(id), id);
      guard.succeeded();
      if (isFinalState(fieldText(detail, "state"))) {
        // A stream ends only after the last event; a poll may have raced the final transition.
        if (!use_stream) deliverAll(api.get(eventsPath(id, last_seq), id));
        return detail;
      }
    } catch (const CliError& error) {
      on_outage(guard.failed(error));  // throws when it is not worth riding out
    }
    // Polling pace; after a dropped stream, also keeps a flapping server from a busy loop.
    std::this_thread::sleep_for(kPollInterval);
  }
}

int eventsCommand(Api& api, const std::string& id, bool follow) {
  if (!follow) {
    json body = api.get(eventsPath(id, 0), id);
    const json& list = body.contains("events") ? body["events"] : json::array();
    EventColumns columns = measureEvents(list);
    for (const auto& event : list.is_array() ? list : json::array()) {
      std::cout << formatEvent(event, columns) << '\n';
    }
    std::cout << std::flush;
    return kExitOk;
  }
  followEvents(
      api, id, [](const json& event) { printLine(formatEvent(event, EventColumns{})); }, printNote);
  return kExitOk;
}

// `timeout_text` is the user's spelling of `timeout`, repeated in the message.
int waitCommand(Api& api, const std::string& id, std::optional<std::chrono::milliseconds> timeout,
                const std::string& timeout_text) {
  const auto start = SteadyClock::now();
  OutageGuard guard;
  json last;
  try {
    while (true) {
      try {
        last = api.get(deploymentPath(id), id);
        guard.succeeded();
        std::string state = fieldText(last, "state");
        if (isFinalState(state)) {
          printLine(formatStateLine(last));
          return exitCodeForFinalState(state);
        }
      } catch (const CliError& error) {
        printNote(guard.failed(error));
      }
      auto waited = SteadyClock::now() - start;
      if (timeout && waited >= *timeout) {
        if (!last.is_null()) printLine(formatStateLine(last));
        std::cerr << "flotilla: gave up waiting for " << id << " after " << timeout_text << '\n';
        return kExitTrouble;
      }
      auto pause = std::chrono::duration_cast<std::chrono::milliseconds>(kPollInterval);
      if (timeout) {
        pause = std::min(pause,
                         std::chrono::duration_cast<std::chrono::milliseconds>(*timeout - waited));
      }
      std::this_thread::sleep_for(pause);
    }
  } catch (const CliError& error) {
    // wait's exit 1 means "the deployment failed"; a failure to find out must not look like it.
    throw CliError(error.what(), kExitTrouble);
  }
}

struct TerminalSize {
  std::size_t rows = 0;  // 0: unknown
  std::size_t columns = 0;
};

TerminalSize terminalSize() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) != 0) return {};
  return {size.ws_row, size.ws_col};
}

std::string clockTime() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[16];
  std::strftime(text, sizeof(text), "%H:%M:%S", &local);
  return text;
}

// Redraws a block of lines in place: back up over the previous frame, overwrite each line,
// clear whatever a taller previous frame left below.
class Screen {
 public:
  void draw(std::vector<std::string> lines) {
    TerminalSize size = terminalSize();
    // Lines that wrap or scroll off the top would break the cursor-up arithmetic.
    if (size.rows > 2 && lines.size() > size.rows - 1) {
      std::size_t hidden = lines.size() - (size.rows - 2);
      lines.resize(size.rows - 2);
      lines.push_back("… " + std::to_string(hidden) + " more lines; enlarge the terminal");
    }
    std::string out;
    if (previous_lines_ > 0) out += "\x1b[" + std::to_string(previous_lines_) + "A";
    out += "\r";
    for (const auto& line : lines) {
      out += "\x1b[2K";
      out += size.columns > 0 ? truncateToWidth(line, size.columns - 1) : line;
      out += "\n";
    }
    out += "\x1b[J";
    std::cout << out << std::flush;
    previous_lines_ = lines.size();
  }

 private:
  std::size_t previous_lines_ = 0;
};

int watchOnTerminal(Api& api, const std::string& id) {
  Screen screen;
  OutageGuard guard;
  std::deque<json> recent;
  long long last_seq = 0;
  json detail;
  std::string trouble;
  while (true) {
    try {
      json fresh = api.get(deploymentPath(id), id);
      json body = api.get(eventsPath(id, last_seq), id);
      detail = std::move(fresh);
      if (body.contains("events") && body["events"].is_array()) {
        for (const auto& event : body["events"]) {
          if (event.contains("seq") && event["seq"].is_number_integer()) {
            last_seq = std::max(last_seq, event["seq"].get<long long>());
          }
          recent.push_back(event);
          if (recent.size() > kRecentEvents) recent.pop_front();
        }
      }
      guard.succeeded();
      trouble.clear();
    } catch (const CliError& error) {
      if (std::string note = guard.failed(error); !note.empty()) trouble = note;
    }

    const std::string state = fieldText(detail, "state");
    const bool done = isFinalState(state) && trouble.empty();
    std::vector<std::string> lines =
        renderDeploymentDetail(detail, std::chrono::system_clock::now());
    if (!recent.empty()) {
      lines.emplace_back();
      lines.emplace_back("Recent events");
      json shown = json::array();
      for (const auto& event : recent) shown.push_back(event);
      EventColumns columns = measureEvents(shown);
      for (const auto& event : shown) lines.push_back(formatEvent(event, columns));
    }
    lines.emplace_back();
    if (!trouble.empty()) {
      lines.push_back("flotilla: " + trouble);
    } else if (done) {
      lines.push_back(formatStateLine(detail));
    } else {
      lines.push_back("Watching " + id + ", updated " + clockTime() +
                      ". Ctrl-C stops watching, not the deployment.");
    }
    screen.draw(std::move(lines));
    if (done) return exitCodeForFinalState(state);
    std::this_thread::sleep_for(kPollInterval);
  }
}

int watchCommand(Api& api, const std::string& id) {
  try {
    const char* term = std::getenv("TERM");
    if (isatty(STDOUT_FILENO) && !(term != nullptr && std::strcmp(term, "dumb") == 0)) {
      return watchOnTerminal(api, id);
    }
    json detail = followEvents(
        api, id, [](const json& event) { printLine(formatEvent(event, EventColumns{})); },
        printNote);
    printLine(formatStateLine(detail));
    return exitCodeForFinalState(fieldText(detail, "state"));
  } catch (const CliError& error) {
    throw CliError(error.what(), kExitTrouble);  // as in wait: 1 is reserved for "it failed"
  }
}

// ---- credentials ----------------------------------------------------------------------------

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

std::string checkedToken(std::string token, const std::string& from) {
  token = trimmed(std::move(token));
  if (token.empty()) throw CliError(from + " is empty", kExitTrouble);
  for (unsigned char c : token) {
    if (c < 0x21 || c > 0x7e) {
      throw CliError(from +
                         " holds characters a token never has (spaces or control "
                         "characters)",
                     kExitTrouble);
    }
  }
  return token;
}

// The API token: --token-file FILE (which only its owner may read), else FLOTILLA_TOKEN, else
// none (the coordinator then answers 401 to everything but /healthz).
std::string loadToken(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("FLOTILLA_TOKEN");
    return env == nullptr || *env == '\0' ? "" : checkedToken(env, "FLOTILLA_TOKEN");
  }
  int fd = ::open(token_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw CliError("cannot read token file " + token_file + ": " + std::strerror(errno),
                   kExitTrouble);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CliError("token file " + token_file + " is not a regular file", kExitTrouble);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw CliError("token file " + token_file + " may be read by group or others (mode " + mode +
                       "); a token is a password: run 'chmod 600 " + token_file + "'",
                   kExitTrouble);
  }
  std::string text;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && text.size() < 4096) text.append(buf, n);
  ::close(fd);
  if (n < 0) throw CliError("cannot read token file " + token_file, kExitTrouble);
  return checkedToken(text, "token file " + token_file);
}

// ---- tokens -----------------------------------------------------------------------------------

std::string joinedList(const json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& item : list) {
    if (item.is_string()) out += (out.empty() ? "" : ",") + sanitize(item.get<std::string>());
  }
  return out;
}

int tokensCreateCommand(Api& api, const std::string& name, const std::string& role,
                        const std::vector<std::string>& envs) {
  json body =
      api.post("/api/v1/tokens", json{{"name", name}, {"role", role}, {"envs", envs}}.dump(), "");
  std::string token = fieldText(body, "token");
  if (token.empty()) throw CliError("the coordinator created no token", kExitTrouble);
  printLine(token);
  std::cerr << "flotilla: token " << name << " (" << role
            << (envs.empty() ? "" : " of " + joinedList(json(envs)))
            << ") created; it is shown only "
            << "this once\n";
  return kExitOk;
}

int tokensListCommand(Api& api, bool as_json) {
  if (as_json) {
    printLine(api.getPretty("/api/v1/tokens"));
    return kExitOk;
  }
  json body = api.get("/api/v1/tokens");
  const json& list = body.contains("tokens") ? body["tokens"] : json::array();
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : list.is_array() ? list : json::array()) {
    std::string envs = joinedList(t.contains("envs") ? t["envs"] : json::array());
    rows.push_back({fieldText(t, "name"), fieldText(t, "role"), envs.empty() ? "all" : envs,
                    fieldText(t, "created_at"), fieldText(t, "created_by")});
  }
  std::cout << renderTable({"NAME", "ROLE", "ENVIRONMENTS", "CREATED", "BY"}, rows) << std::flush;
  return kExitOk;
}

int tokensRevokeCommand(Api& api, const std::string& name) {
  api.del("/api/v1/tokens/" + urlEscape(name));
  printLine("token " + name + " revoked");
  return kExitOk;
}

// ---- audit ------------------------------------------------------------------------------------

std::string formatUtc(TimePoint t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

int auditCommand(Api& api, const std::string& since, int limit, bool as_json, bool verify) {
  if (verify) {
    json verdict = api.get("/api/v1/audit/verify");
    if (as_json) {
      printLine(verdict.dump(2));
    } else if (verdict.value("ok", false)) {
      printLine("audit trail intact: " + fieldText(verdict, "records") + " records checked");
    } else {
      printLine("audit trail broken at record " + fieldText(verdict, "first_bad") + ": " +
                fieldText(verdict, "problem"));
    }
    return verdict.value("ok", false) ? kExitOk : kExitFailed;
  }
  std::string path = "/api/v1/audit?limit=" + std::to_string(limit);
  if (!since.empty()) {
    std::string when = since;
    if (auto ago = parseDuration(since)) {
      when = formatUtc(std::chrono::system_clock::now() -
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(*ago));
    }
    path += "&since=" + urlEscape(when);
  }
  if (as_json) {
    printLine(api.getPretty(path));
    return kExitOk;
  }
  json body = api.get(path);
  const json& list = body.contains("records") ? body["records"] : json::array();
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : list.is_array() ? list : json::array()) {
    std::string who = fieldText(r, "actor");
    if (!fieldText(r, "role").empty()) who += " (" + fieldText(r, "role") + ")";
    rows.push_back({fieldText(r, "seq"), fieldText(r, "time"), who, fieldText(r, "action"),
                    fieldText(r, "target"), fieldText(r, "outcome"), fieldText(r, "client"),
                    fieldText(r, "detail")});
  }
  if (rows.empty()) {
    printLine("No audit records" + std::string(since.empty() ? "." : " since " + since + "."));
    return kExitOk;
  }
  std::cout << renderTable(
                   {"SEQ", "TIME", "WHO", "ACTION", "TARGET", "OUTCOME", "CLIENT", "DETAIL"}, rows)
            << std::flush;
  return kExitOk;
}

// ---- agents enroll, revoke, remove -------------------------------------------------------------

int agentsEnrollCommand(Api& api, const std::string& cluster, std::chrono::milliseconds ttl) {
  const long long seconds = std::max<long long>(1, ttl.count() / 1000);
  json body = api.post("/api/v1/agents/" + urlEscape(cluster) + "/enroll",
                       json{{"ttl_seconds", seconds}}.dump(), "");
  std::string token = fieldText(body, "token");
  if (token.empty()) throw CliError("the coordinator created no enrollment token", kExitTrouble);
  printLine(token);
  std::cerr << "flotilla: enrollment token for " << cluster << ", usable once until "
            << fieldText(body, "expires_at") << ": start the agent with --cluster " << cluster
            << " --enroll-token TOKEN\n";
  return kExitOk;
}

int agentsRevokeCommand(Api& api, const std::string& cluster) {
  api.post("/api/v1/agents/" + urlEscape(cluster) + "/revoke", "{}", "");
  printLine("agent " + cluster + " revoked: its key is removed and its connection closed");
  return kExitOk;
}

int agentsRemoveCommand(Api& api, const std::string& cluster) {
  api.del("/api/v1/agents/" + urlEscape(cluster));
  printLine("agent " + cluster + " removed");
  return kExitOk;
}

// ---- command line ---------------------------------------------------------------------------

constexpr char kIdHelp[] = "Deployment id, as printed by 'flotilla submit' (e.g. checkout-3)";

constexpr char kMainFooter[] = R"(Environment:
  FLOTILLA_SERVER  coordinator URL, used when --server is not given
  FLOTILLA_TOKEN   API token sent with every request, used when --token-file is not given
  FLOTILLA_CA_CERT CA certificate(s) for an https:// server, used when --ca-cert is not given

Exit codes:
  0    done (for wait and watch: the deployment succeeded)
  1    the coordinator refused the request, or the deployment ended rolled_back, failed or
       cancelled (wait, watch)
  2    the coordinator could not be reached, a file could not be read, or wait timed out
  100+ the command line is wrong (the message says how)

Run 'flotilla COMMAND --help' for the details of a command.)";

int run(int argc, char** argv) {
  CLI::App app{
      "flotilla submits deployment plans to a Flotilla coordinator and follows and steers them\n"
      "as they roll out wave by wave across the fleet: approve gated waves, pause, resume,\n"
      "roll back or cancel.",
      "flotilla"};
  app.set_version_flag("--version", "flotilla " FLOTILLA_VERSION, "Print the version and exit");
  // Not require_subcommand(1): with it, a mistyped command name is reported as "A subcommand
  // is required" instead of naming the unexpected word.
  app.require_subcommand(0, 1);
  // Subcommands created after this inherit it, so --server also works after the command name.
  app.fallthrough();
  app.footer(kMainFooter);

  std::string server = kDefaultServer;
  app.add_option("--server", server, "HTTP address of flotilla-coordinator")
      ->envname("FLOTILLA_SERVER")
      ->type_name("URL")
      ->capture_default_str();

  std::string ca_file;
  app.add_option("--ca-cert", ca_file,
                 "PEM file of the CA that signed an https:// coordinator's certificate (default:\n"
                 "the system's trusted CAs)")
      ->envname("FLOTILLA_CA_CERT")
      ->type_name("FILE");

  std::string token_file;
  app.add_option("--token-file", token_file,
                 "File holding the API token (mode 0600: refused when group or others may read "
                 "it); default: FLOTILLA_TOKEN")
      ->type_name("FILE");

  std::string id;
  std::string file;
  std::string wave;
  std::string timeout_text;
  bool as_json = false;
  bool follow = false;
  std::vector<std::pair<CLI::App*, std::function<int(Api&)>>> commands;

  auto* submit = app.add_subcommand(
      "submit", "Submit a plan file (YAML or JSON); prints the new deployment's id");
  submit->add_option("FILE", file, "Plan file; .json is sent as JSON, anything else as YAML")
      ->required();
  submit->footer(R"(The coordinator checks the plan and either stores and starts it, or refuses it
with every problem listed, one per line on stderr as FILE:LINE:COLUMN: message
(nothing is stored then). On success only the id is printed, so scripts can do:
  id=$(flotilla submit checkout.yaml) && flotilla wait "$id" --timeout 30m

Exit: 0 submitted; 1 plan refused (or another coordinator error); 2 the file cannot be
read or the coordinator cannot be reached.)");
  commands.emplace_back(submit, [&](Api& api) { return submitCommand(api, file); });

  auto* status = app.add_subcommand("status", "Show all deployments, or one deployment in detail");
  status->add_option("ID", id, kIdHelp);
  status->add_flag("--json", as_json, "Print the coordinator's JSON instead of text");
  status->footer(R"(Without ID: one line per deployment, newest first, with columns
  ID  SERVICE  VERSION  STATE  WAVE (current wave, e.g. "2/3 prod-canary")  AGE
With ID: the deployment's state, then each wave and each of its clusters with their
state, current or last step and message, and what failed if something did.

States: pending, running, awaiting_approval (run 'flotilla approve'), paused,
rolling_back, and the final ones succeeded, rolled_back, failed (a rollback itself
failed: the clusters listed need a human), cancelled.)");
  commands.emplace_back(status, [&](Api& api) { return statusCommand(api, id, as_json); });

  auto* watch = app.add_subcommand("watch", "Follow one deployment live until it finishes");
  watch->add_option("ID", id, kIdHelp)->required();
  watch->footer(R"(On a terminal, the status view (as in 'flotilla status ID') is redrawn in place
every 500 ms, with the latest events below it. Otherwise (piped, in CI) one line is
printed per event as it happens, and a final line with the outcome.
Ctrl-C stops watching; the deployment itself carries on.

Exit: 0 succeeded; 1 rolled_back, failed or cancelled; 2 the coordinator could not be
reached or does not know ID.)");
  commands.emplace_back(watch, [&](Api& api) { return watchCommand(api, id); });

  auto* wait = app.add_subcommand(
      "wait", "Wait until a deployment finishes; the exit code tells how it ended");
  wait->add_option("ID", id, kIdHelp)->required();
  wait->add_option("--timeout", timeout_text, "Give up after this long (default: wait forever)")
      ->type_name("DURATION")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return parseDuration(text) ? "" : "expected a duration such as 90s, 15m or 1h30m";
          },
          ""));
  wait->footer(R"(Checks the deployment every 500 ms and prints one line when it is final, e.g.
  checkout-3 rolled_back: health check failed on prod-eu-1
A short coordinator outage (up to 30s) is ridden out with a note on stderr.
DURATION: a number with a unit, combinable: 500ms, 90s, 15m, 2h, 1h30m, 1d; a bare
number is seconds.

Exit: 0 succeeded; 1 rolled_back, failed or cancelled; 2 timed out, the coordinator
could not be reached, or it does not know ID.)");
  commands.emplace_back(wait, [&](Api& api) {
    std::optional<std::chrono::milliseconds> timeout;
    if (!timeout_text.empty()) timeout = parseDuration(timeout_text);
    return waitCommand(api, id, timeout, timeout_text);
  });

  auto* approve = app.add_subcommand(
      "approve", "Approve a wave waiting for approval ('approval: required' in the plan)");
  approve->add_option("ID", id, kIdHelp)->required();
  approve->add_option("WAVE", wave,
                      "Wave to approve; without it, the wave the deployment is waiting on");
  approve->footer(R"(Without WAVE the coordinator approves the wave the deployment is waiting on;
naming it makes sure you approve the wave you checked. 'flotilla status ID' shows
which wave waits (state awaiting_approval).

Exit: 0 approved; 1 the coordinator refused (unknown ID, nothing waiting, wrong wave);
2 the coordinator could not be reached.)");
  commands.emplace_back(approve, [&](Api& api) { return approveCommand(api, id, wave); });

  struct Action {
    const char* name;
    const char* what;  // for the confirmation line
    const char* help;
    const char* footer;
  };
  static constexpr Action kActions[] = {
      {"rollback", "rollback",
       "Roll back every cluster a deployment reached to the previous version",
       "Clusters go back newest wave first; clusters the deployment never reached are not\n"
       "touched. Follow it with 'flotilla watch ID'."},
      {"pause", "pause", "Pause a deployment: nothing new starts until 'flotilla resume'",
       "A paused deployment keeps what it already rolled out. Continue it with\n"
       "'flotilla resume ID', or undo it with 'flotilla rollback ID'."},
      {"resume", "resume", "Resume a paused deployment where it stopped", ""},
      {"cancel", "cancel", "Cancel a deployment for good: it stops and will not continue",
       "Cancelling does not undo what was rolled out already; use 'flotilla rollback ID'\n"
       "for that."},
  };
  std::string reason;
  for (const auto& action : kActions) {
    auto* sub = app.add_subcommand(action.name, action.help);
    sub->add_option("ID", id, kIdHelp)->required();
    if (std::string(action.name) == "rollback") {
      sub->add_option("--reason", reason,
                      "Why: recorded in the deployment's events and the audit trail, with your "
                      "token's name")
          ->type_name("TEXT");
    }
    std::string footer = action.footer;
    if (!footer.empty()) footer += "\n\n";
    footer +=
        "Prints one line with the deployment's new state.\n\n"
        "Exit: 0 accepted; 1 the coordinator refused (unknown ID, or not possible in the\n"
        "current state); 2 the coordinator could not be reached.";
    sub->footer(footer);
    commands.emplace_back(sub, [&id, &reason, action](Api& api) {
      const bool with_reason = std::string(action.name) == "rollback" && !reason.empty();
      return actionCommand(api, id, action.name, action.what,
                           with_reason ? json{{"reason", reason}}.dump() : "");
    });
  }

  auto* events = app.add_subcommand("events", "List a deployment's events, oldest first");
  events->add_option("ID", id, kIdHelp)->required();
  events->add_flag("--follow,-f", follow,
                   "Keep printing new events as they happen, until the deployment is final");
  events->footer(R"(One line per event: TIME  TYPE  WAVE/CLUSTER/STEP  MESSAGE (times in UTC).

Exit: 0 listed (with --follow: the deployment reached a final state, whatever it is);
1 the coordinator does not know ID; 2 the coordinator could not be reached.)");
  commands.emplace_back(events, [&](Api& api) { return eventsCommand(api, id, follow); });

  auto* agents = app.add_subcommand(
      "agents", "List the agents (one per cluster) and whether they are connected");
  agents->add_flag("--json", as_json, "Print the coordinator's JSON instead of a table");
  agents->footer(
      "Columns: CLUSTER  STATE (connected or lost)  LABELS  LAST SEEN (time since the last "
      "heartbeat).");
  // Not required: 'flotilla agents' alone lists them.
  agents->require_subcommand(0, 1);
  std::string cluster;
  std::string ttl_text = "1h";
  auto* enroll = agents->add_subcommand(
      "enroll", "Create a one-time enrollment token for CLUSTER's agent and print it (admin)");
  enroll->add_option("CLUSTER", cluster, "Cluster name the agent will speak as")->required();
  enroll->add_option("--ttl", ttl_text, "How long the token may be used")
      ->type_name("DURATION")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return parseDuration(text) ? "" : "expected a duration such as 30m, 1h or 1d";
          },
          ""));
  enroll->footer(R"(Only the token is printed on stdout. Give it to the agent once:
  flotilla-agent --cluster CLUSTER --enroll-token TOKEN --coordinator-key KEY ...
Its key is then bound to CLUSTER and the token is spent.)");
  commands.emplace_back(enroll, [&](Api& api) {
    return agentsEnrollCommand(api, cluster, *parseDuration(ttl_text));
  });
  auto* revoke_agent = agents->add_subcommand(
      "revoke", "Remove CLUSTER's agent key and close its connection (admin)");
  revoke_agent->add_option("CLUSTER", cluster, "Cluster name")->required();
  revoke_agent->footer("It cannot come back without a new 'flotilla agents enroll'.");
  commands.emplace_back(revoke_agent, [&](Api& api) { return agentsRevokeCommand(api, cluster); });
  auto* remove_agent = agents->add_subcommand(
      "remove", "Forget a cluster that is gone: its record and its key (admin)");
  remove_agent->add_option("CLUSTER", cluster, "Cluster name")->required();
  commands.emplace_back(remove_agent, [&](Api& api) { return agentsRemoveCommand(api, cluster); });
  // After its subcommands: the first parsed entry of `commands` runs.
  commands.emplace_back(agents, [&](Api& api) { return agentsCommand(api, as_json); });

  auto* tokens = app.add_subcommand("tokens", "Manage API tokens (admin)");
  tokens->require_subcommand(1);
  std::string token_name;
  std::string role;
  std::vector<std::string> envs;
  auto* tokens_create =
      tokens->add_subcommand("create", "Create an API token and print it (shown only this once)");
  tokens_create->add_option("NAME", token_name, "Token name, e.g. alice or ci (a-z, 0-9, '-')")
      ->required();
  tokens_create->add_option("--role", role, "viewer, deployer, approver or admin")
      ->required()
      ->check(CLI::IsMember({"viewer", "deployer", "approver", "admin"}));
  tokens_create
      ->add_option("--env", envs,
                   "Environment (agents' environment label) a deployer or approver "
                   "is limited to; repeatable; default: all")
      ->type_name("ENV");
  tokens_create->footer(
      R"(Roles: viewer reads everything; deployer submits, pauses, resumes, cancels and
rolls back deployments whose every cluster is in its environments; approver
approves waves in its environments; admin does everything (tokens, agents).
Only the token is printed on stdout:
  flotilla tokens create ci --role deployer --env staging > ci.token && chmod 600 ci.token)");
  commands.emplace_back(tokens_create,
                        [&](Api& api) { return tokensCreateCommand(api, token_name, role, envs); });
  auto* tokens_list = tokens->add_subcommand("list", "List API tokens (never their secrets)");
  tokens_list->add_flag("--json", as_json, "Print the coordinator's JSON instead of a table");
  commands.emplace_back(tokens_list, [&](Api& api) { return tokensListCommand(api, as_json); });
  auto* tokens_revoke =
      tokens->add_subcommand("revoke", "Revoke an API token: it stops working at once");
  tokens_revoke->add_option("NAME", token_name, "Token name")->required();
  commands.emplace_back(tokens_revoke,
                        [&](Api& api) { return tokensRevokeCommand(api, token_name); });

  auto* audit = app.add_subcommand(
      "audit", "List the audit trail (who did what, refusals included), or verify it");
  std::string since;
  int limit = 1000;
  bool verify = false;
  audit->add_option("--since", since, "From this time on: RFC 3339, or a duration ago (e.g. 1h)")
      ->type_name("TIME");
  audit->add_option("--limit", limit, "At most this many records (the newest)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  audit->add_flag("--json", as_json, "Print the coordinator's JSON");
  audit->add_flag("--verify", verify,
                  "Check the hash chain instead: exit 1 and name the first record that does not "
                  "match");
  audit->footer(R"(Every change asked of the coordinator (refused ones too), every agent enrollment,
revocation and refused agent frame is a record: SEQ TIME WHO ACTION TARGET OUTCOME
CLIENT DETAIL. Records form a hash chain; --verify walks it.

Exit: 0 listed, or intact; 1 the chain is broken (--verify) or the coordinator refused;
2 the coordinator could not be reached.)");
  commands.emplace_back(audit,
                        [&](Api& api) { return auditCommand(api, since, limit, as_json, verify); });

  // Subcommand help does not list the parent's options; say where the coordinator comes from.
  for (auto& [sub, command] : commands) {
    sub->footer(sub->get_footer() +
                "\n\nCoordinator: --server URL (before or after the command) or FLOTILLA_SERVER;\n"
                "default " +
                std::string(kDefaultServer) + ". API token: --token-file FILE or FLOTILLA_TOKEN.");
  }

  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) throw CLI::RequiredError("A command");
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  try {
    Api api(server, loadToken(token_file), ca_file);
    for (auto& [sub, command] : commands) {
      if (sub->parsed()) return command(api);
    }
    return kExitTrouble;  // the parse step guarantees a command
  } catch (const CliError& error) {
    std::cerr << "flotilla: " << error.what() << '\n';
    return error.exitCode();
  } catch (const std::exception& error) {
    // Last resort for a bug or a reply shaped unlike the contract; still one line, no trace.
    std::cerr << "flotilla: unexpected error: " << error.what() << '\n';
    return kExitTrouble;
  }
}

}  // namespace
}  // namespace flotilla::cli

int main(int argc, char** argv) { return flotilla::cli::run(argc, argv); }
