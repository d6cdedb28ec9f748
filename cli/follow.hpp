// Following a deployment: `events` (with --follow), `wait` and `watch`, the event stream with
// its fall-back to polling, and riding out a short coordinator outage.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/time_format.hpp"

namespace flotilla::cli {

class CliError;

// Unfinished deployments survive a coordinator restart, so a long `wait` or `watch` rides out
// a short outage instead of failing the pipeline that runs it.
inline constexpr std::chrono::seconds kOutageGrace{30};

// Tracks a polling loop's trouble: transient failures are tolerated for kOutageGrace once the
// coordinator has answered at least once; anything else is rethrown. The first request gets no
// such grace: a wrong --server should fail at once.
class OutageGuard {
 public:
  explicit OutageGuard(const common::Clock& clock);
  OutageGuard();  // the real clock

  void succeeded();
  // Rethrows `error` unless it is worth riding out. Returns the note to show, once per outage:
  // a line every 500 ms would bury the output it interrupts.
  std::string failed(const CliError& error);

 private:
  const common::Clock& clock_;
  bool answered_ = false;
  std::optional<common::SteadyTime> outage_since_;
};

// 0 for succeeded, 1 for the other final states.
int exitCodeForFinalState(const std::string& state);

// Calls `on_event` once per event of deployment `id`, in order, from the first until the
// deployment is final; returns its final Detail. Uses the SSE stream and reconnects with
// ?after= if the stream drops early; falls back to polling when the server answers the stream
// request with plain JSON or 503 (every stream taken). `on_outage` gets OutageGuard's notes.
// `filters`: a query string for the events (eventFilterQuery), "" for all of them.
nlohmann::json followEvents(Api& api, const std::string& id,
                            const std::function<void(const nlohmann::json&)>& on_event,
                            const std::function<void(const std::string&)>& on_outage,
                            const std::string& filters = "");

// `events --type T --cluster C --since T`, as the coordinator filters them.
struct EventFilters {
  std::string type;     // a family (stage), FAMILY.* or one type (stage.failed); commas for more
  std::string cluster;  // one cluster
  std::string since;    // RFC 3339, or a duration back from now (10m)
};
// The query string of `filters` (encoded; "" when none is set). The coordinator judges them: a
// bad pattern or time comes back as its 400 message.
std::string eventFilterQuery(const EventFilters& filters, common::SystemTime now);

int eventsCommand(Api& api, const std::string& id, bool follow, const EventFilters& filters = {});
// `timeout_text` is the user's spelling of `timeout`, repeated in the message.
int waitCommand(Api& api, const std::string& id, std::optional<std::chrono::milliseconds> timeout,
                const std::string& timeout_text);
// Redrawn in place on a terminal; otherwise what changes: events (output lines only
// `with_output`) and clusterChanges().
int watchCommand(Api& api, const std::string& id, bool with_output = false);
// "TIME  cluster  <clusterSummary>" for each cluster of `detail` whose summary differs from the
// one in `shown` (updated); clusters still pending are recorded silently.
std::vector<std::string> clusterChanges(const nlohmann::json& detail, const nlohmann::json& agents,
                                        std::chrono::system_clock::time_point now,
                                        std::map<std::string, std::string>& shown);

void addWatchCommand(CLI::App& app, Commands& commands);
void addWaitCommand(CLI::App& app, Commands& commands);
void addEventsCommand(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
