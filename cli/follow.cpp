// `events`, `wait` and `watch`: following a deployment until it is final, by event stream or
// by polling, and the terminal view `watch` redraws in place.
#include "cli/follow.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "cli/api.hpp"
#include "cli/args.hpp"
#include "cli/freeze.hpp"
#include "cli/render.hpp"
#include "common/rules.hpp"
#include "common/time_format.hpp"

namespace flotilla::cli {

using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kPollInterval = 500ms;
constexpr std::size_t kRecentEvents = 5;

const common::Clock& realClock() {
  static const common::RealClock clock;
  return clock;
}

}  // namespace

OutageGuard::OutageGuard(const common::Clock& clock) : clock_(clock) {}
OutageGuard::OutageGuard() : OutageGuard(realClock()) {}

void OutageGuard::succeeded() {
  answered_ = true;
  outage_since_.reset();
}

std::string OutageGuard::failed(const CliError& error) {
  // A 429 is an answer: the coordinator is there, only busy with this token.
  const bool rate_limited = error.transientReason() == "HTTP 429";
  if ((!answered_ && !rate_limited) || !error.transient()) throw error;
  auto now = clock_.now();
  if (outage_since_ && now - *outage_since_ > kOutageGrace) throw error;
  if (outage_since_) return "";
  outage_since_ = now;
  return "lost contact with the coordinator (" + error.transientReason() +
         "); retrying for up to " +
         common::formatDuration(
             std::chrono::duration_cast<std::chrono::milliseconds>(kOutageGrace));
}

int exitCodeForFinalState(const std::string& state) {
  return state == "succeeded" ? kExitOk : kExitFailed;
}

json followEvents(Api& api, const std::string& id, const std::function<void(const json&)>& on_event,
                  const std::function<void(const std::string&)>& on_outage,
                  const std::string& filters) {
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
  const common::SseHandler on_sse = [&](const common::SseEvent& sse) {
    json event = json::parse(sse.data, nullptr, /*allow_exceptions=*/false);
    if (!event.is_discarded()) deliver(event);
    guard.succeeded();  // events flowing: a later drop is an outage to ride out, not a bad id
    return true;
  };

  while (true) {
    try {
      const std::string path = eventsPath(id, last_seq, filters);
      if (use_stream) {
        common::HttpResult result = api.stream(path, on_sse);
        const auto* response = std::get_if<common::HttpReply>(&result);
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
        if (!use_stream) deliverAll(api.get(eventsPath(id, last_seq, filters), id));
        return detail;
      }
    } catch (const CliError& error) {
      on_outage(guard.failed(error));  // throws when it is not worth riding out
    }
    // Polling pace; after a dropped stream, also keeps a flapping server from a busy loop.
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string eventFilterQuery(const EventFilters& filters, common::SystemTime now) {
  std::string query;
  auto add = [&](const char* key, const std::string& value) {
    if (value.empty()) return;
    query += (query.empty() ? "" : "&") + std::string(key) + "=" + common::urlEncode(value);
  };
  add("type", filters.type);
  add("cluster", filters.cluster);
  add("since", filters.since.empty() ? "" : sinceParam(filters.since, now));
  return query;
}

int eventsCommand(Api& api, const std::string& id, bool follow, const EventFilters& filters) {
  const std::string query = eventFilterQuery(filters, std::chrono::system_clock::now());
  if (!follow) {
    const json list = api.getList(eventsPath(id, 0, query), "events", id);
    EventColumns columns = measureEvents(list);
    for (const auto& event : list) {
      std::cout << formatEvent(event, columns) << '\n';
    }
    std::cout << std::flush;
    return kExitOk;
  }
  followEvents(
      api, id, [](const json& event) { printLine(formatEvent(event, EventColumns{})); }, printNote,
      query);
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
      // In milliseconds: a timeout of many years would overflow the clock's nanoseconds.
      auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
      if (timeout && waited >= *timeout) {
        if (!last.is_null()) printLine(formatStateLine(last));
        std::cerr << "flotilla: gave up waiting for " << id << " after " << timeout_text << '\n';
        return kExitTimedOut;
      }
      auto pause = std::chrono::duration_cast<std::chrono::milliseconds>(kPollInterval);
      if (timeout) {
        pause = std::min(pause, *timeout - waited);
      }
      std::this_thread::sleep_for(pause);
    }
  } catch (const CliError& error) {
    // wait's exit 1 means "the deployment failed"; a failure to find out must not look like it.
    throw CliError(error.what(), kExitTrouble);
  }
}

namespace {

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
  json agents;
  std::string trouble;
  while (true) {
    try {
      json fresh = api.get(deploymentPath(id), id);
      json body = api.get(eventsPath(id, last_seq), id);
      agents = agentsForView(api);
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
    // An incident freeze first, as in `flotilla status`.
    std::vector<std::string> lines =
        freezeBanner(detail.is_object() ? detail.value("freezes", json::array()) : json());
    for (auto& line : renderDeploymentDetail(detail, std::chrono::system_clock::now(), agents)) {
      lines.push_back(std::move(line));
    }
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

}  // namespace

std::vector<std::string> clusterChanges(const json& detail, const json& agents, TimePoint now,
                                        std::map<std::string, std::string>& shown) {
  std::vector<std::string> lines;
  if (!detail.is_object() || !detail.contains("waves") || !detail["waves"].is_array()) return lines;
  for (const auto& wave : detail["waves"]) {
    if (!wave.is_object() || !wave.contains("clusters") || !wave["clusters"].is_array()) continue;
    for (const auto& cluster : wave["clusters"]) {
      const std::string name = fieldText(cluster, "name");
      std::string summary = clusterSummary(cluster, agents, now);
      auto it = shown.find(name);
      if (it != shown.end() && it->second == summary) continue;
      // A cluster never started is news only once it moves.
      if (it == shown.end() && fieldText(cluster, "state") == "pending") {
        shown[name] = summary;
        continue;
      }
      lines.push_back(common::formatRfc3339(now) + "  cluster  " + summary);
      shown[name] = std::move(summary);
    }
  }
  return lines;
}

namespace {

// Piped: a line per event (output lines only with --output) and a line per cluster whose view
// changed (state, step, weight, versions, agent), polled like the terminal view.
int watchOnPipe(Api& api, const std::string& id, bool with_output) {
  OutageGuard guard;
  long long last_seq = 0;
  std::map<std::string, std::string> shown;
  while (true) {
    try {
      json detail = api.get(deploymentPath(id), id);
      json body = api.get(eventsPath(id, last_seq), id);
      const json agents = agentsForView(api);
      guard.succeeded();
      if (body.contains("events") && body["events"].is_array()) {
        for (const auto& event : body["events"]) {
          if (event.contains("seq") && event["seq"].is_number_integer()) {
            last_seq = std::max(last_seq, event["seq"].get<long long>());
          }
          if (!with_output && fieldText(event, "type") == "stage.output") continue;
          printLine(formatEvent(event, EventColumns{}));
        }
      }
      for (const auto& line :
           clusterChanges(detail, agents, std::chrono::system_clock::now(), shown)) {
        printLine(line);
      }
      const std::string state = fieldText(detail, "state");
      if (isFinalState(state)) {
        printLine(formatStateLine(detail));
        return exitCodeForFinalState(state);
      }
    } catch (const CliError& error) {
      printNote(guard.failed(error));  // throws when it is not worth riding out
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace

int watchCommand(Api& api, const std::string& id, bool with_output) {
  try {
    const char* term = std::getenv("TERM");
    if (isatty(STDOUT_FILENO) && !(term != nullptr && std::strcmp(term, "dumb") == 0)) {
      return watchOnTerminal(api, id);
    }
    return watchOnPipe(api, id, with_output);
  } catch (const CliError& error) {
    throw CliError(error.what(), kExitTrouble);  // as in wait: 1 is reserved for "it failed"
  }
}

// ---- command line ---------------------------------------------------------------------------

void addWatchCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string id;
    bool with_output = false;
  };
  auto args = std::make_shared<Args>();
  auto* watch = app.add_subcommand("watch", "Follow one deployment live until it finishes");
  watch->add_option("ID", args->id, kIdHelp)->required();
  watch->add_flag("--output", args->with_output,
                  "Piped: also print the steps' output lines (stage.output events)");
  watch->footer(R"(On a terminal, the status view (as in 'flotilla status ID') is redrawn in place
every 500 ms, with the latest events below it. Each cluster row shows its step, the
strategy step and traffic weight (shift 2/3 50%), from -> to versions, and its agent
when that is unknown or lost; below it each cluster's last analysis figures against
their thresholds and its health-check streak.
Otherwise (piped, in CI) it prints what changes: one line per event except the steps'
output (--output includes it), so a cluster.analysis line for every analysis window
with its figures (analysis 2/3: 2.1.0 err 0.8% p95 12 ms (420 req) vs 2.0.0 ...;
limits ...; pass · health 0/3 failing), one "cluster" line whenever a cluster's state,
step, weight or agent changes, and a final line with the outcome.
Ctrl-C stops watching; the deployment itself carries on.

Exit: 0 succeeded; 1 rolled_back, failed or cancelled; 2 the coordinator could not be
reached or does not know ID.)");
  commands.push_back(
      {watch, [args](Api& api) { return watchCommand(api, args->id, args->with_output); }});
}

void addWaitCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string id;
    std::string timeout_text;
  };
  auto args = std::make_shared<Args>();
  auto* wait = app.add_subcommand(
      "wait", "Wait until a deployment finishes; the exit code tells how it ended");
  wait->add_option("ID", args->id, kIdHelp)->required();
  wait->add_option("--timeout", args->timeout_text,
                   "Give up after this long (default: wait forever)")
      ->type_name("DURATION")
      ->check(durationCheck());
  wait->footer(R"(Checks the deployment every 500 ms and prints one line when it is final, e.g.
  checkout-3 rolled_back: health check failed on prod-eu-1
A short coordinator outage (up to 30s) is ridden out with a note on stderr.
DURATION: a number with a unit, largest unit first: 500ms, 90s, 15m, 2h, 1h30m; a
number alone is refused.

Exit codes (distinct, for scripts and CI):
  0  the deployment succeeded
  1  it ended rolled_back, failed or cancelled
  2  the coordinator could not be reached (or stayed away past the 30s grace), or it
     does not know ID
  3  --timeout passed first; the deployment carries on)");
  commands.push_back({wait, [args](Api& api) {
                        std::optional<std::chrono::milliseconds> timeout;
                        if (!args->timeout_text.empty()) timeout = durationOf(args->timeout_text);
                        return waitCommand(api, args->id, timeout, args->timeout_text);
                      }});
}

void addEventsCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string id;
    bool follow = false;
    EventFilters filters;
  };
  auto args = std::make_shared<Args>();
  auto* events = app.add_subcommand("events", "List a deployment's events, oldest first");
  events->add_option("ID", args->id, kIdHelp)->required();
  events->add_flag("--follow,-f", args->follow,
                   "Keep printing new events as they happen, until the deployment is final");
  events
      ->add_option("--type", args->filters.type,
                   "Only events of this type: a family (stage, wave, deployment, agent,\n"
                   "cluster, rollback, alert), FAMILY.* or one type (stage.failed); commas\n"
                   "for several")
      ->type_name("PATTERN");
  events->add_option("--cluster", args->filters.cluster, "Only events about this cluster")
      ->type_name("NAME");
  events
      ->add_option("--since", args->filters.since,
                   "Only events from this time on: RFC 3339 (2026-12-01T10:00:00Z) or a\n"
                   "duration back from now (10m, 1h30m)")
      ->type_name("TIME");
  events->footer(R"(One line per event: TIME  TYPE  WAVE/CLUSTER/STEP  MESSAGE (times in UTC).
The coordinator applies the filters (also to --follow); a pattern or time it cannot read is
refused with its reason (exit 1).

Exit: 0 listed (with --follow: the deployment reached a final state, whatever it is);
1 the coordinator does not know ID; 2 the coordinator could not be reached.)");
  commands.push_back({events, [args](Api& api) {
                        return eventsCommand(api, args->id, args->follow, args->filters);
                      }});
}

}  // namespace flotilla::cli
