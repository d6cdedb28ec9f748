// A deployment's events: a JSON page after a sequence number, or with `Accept:
// text/event-stream` a live SSE stream that wakes on each commit and ends when the deployment
// is final. Streams hold a thread each, so they are capped in all and per token.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

constexpr size_t kEventPage = 1000;
// Bounds of the filters: a query is small, and the patterns are few.
constexpr size_t kMaxFilterValue = 256;
constexpr size_t kMaxTypePatterns = 8;
// Every event type is "<family>.<name>" (or the family alone, as "alert").
const std::vector<std::string> kEventFamilies = {"agent",    "alert", "cluster", "deployment",
                                                 "rollback", "stage", "wave"};

bool isTypeWord(const std::string& word) {
  return !word.empty() && word.size() <= 40 && std::all_of(word.begin(), word.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || c == '_';
  });
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

json eventJson(const StoredEvent& e) {
  // The coordinator wrote `data` itself (bounded, an object); a record that does not parse
  // shows none rather than failing the whole list.
  json data = json::parse(e.event.data, nullptr, /*allow_exceptions=*/false);
  if (!data.is_object()) data = nullptr;
  return json{{"seq", e.seq},
              {"time", rfc3339(e.time_ms)},
              {"type", e.event.type},
              {"wave", e.event.wave},
              {"cluster", e.event.cluster},
              {"step", e.event.step},
              {"message", e.event.message},
              {"data", std::move(data)}};
}

uint64_t parseSeq(const std::string& text) {
  if (text.empty() || text.size() > 20 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    return 0;
  }
}

// Where a listing or stream starts: after ?after=SEQ, or after the Last-Event-ID a browser's
// EventSource sends when it reconnects (the later of the two).
uint64_t afterParam(const httplib::Request& req) {
  uint64_t after = req.has_param("after") ? parseSeq(req.get_param_value("after")) : 0;
  if (req.get_header_value_count("Last-Event-ID") == 1) {
    after = std::max(after, parseSeq(req.get_header_value("Last-Event-ID")));
  }
  return after;
}

}  // namespace

StatusOr<EventFilter> EventFilter::fromQuery(const httplib::Request& req) {
  EventFilter f;
  for (const char* key : {"type", "cluster", "since"}) {
    if (req.get_param_value_count(key) > 1) {
      return Status::InvalidArgument(std::string(key) + " may be given once");
    }
    if (req.get_param_value(key).size() > kMaxFilterValue) {
      return Status::InvalidArgument(std::string(key) + " is longer than " +
                                     std::to_string(kMaxFilterValue) + " characters");
    }
  }
  if (req.has_param("type")) {
    const std::string value = req.get_param_value("type");
    std::vector<std::string> patterns;
    for (size_t start = 0;;) {
      size_t comma = value.find(',', start);
      patterns.push_back(value.substr(start, comma == std::string::npos ? comma : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (patterns.size() > kMaxTypePatterns) {
      return Status::InvalidArgument("type takes at most " + std::to_string(kMaxTypePatterns) +
                                     " patterns");
    }
    for (const std::string& p : patterns) {
      const size_t dot = p.find('.');
      const std::string family = p.substr(0, dot);
      const std::string rest = dot == std::string::npos ? "" : p.substr(dot + 1);
      const bool known =
          std::find(kEventFamilies.begin(), kEventFamilies.end(), family) != kEventFamilies.end();
      if (!known || (dot != std::string::npos && rest != "*" && !isTypeWord(rest))) {
        return Status::InvalidArgument(
            "type " + http_internal::quoted(p) + " is not an event type pattern: use a family (" +
            joined(kEventFamilies) + "), FAMILY.* or one type such as stage.failed");
      }
      if (dot == std::string::npos || rest == "*") {
        f.families.push_back(family);
      } else {
        f.types.push_back(p);
      }
    }
  }
  if (req.has_param("cluster")) {
    f.cluster = req.get_param_value("cluster");
    if (!common::isValidName(f.cluster)) {
      return Status::InvalidArgument("cluster " + http_internal::quoted(f.cluster) +
                                     " is not a cluster name");
    }
  }
  if (req.has_param("since")) {
    f.since_ms = common::parseRfc3339(req.get_param_value("since"));
    if (!f.since_ms) {
      return Status::InvalidArgument("since " +
                                     http_internal::quoted(req.get_param_value("since")) +
                                     " is not an RFC 3339 time, e.g. 2026-12-01T00:00:00Z");
    }
  }
  return f;
}

bool EventFilter::matches(const StoredEvent& e) const {
  if (since_ms && e.time_ms < *since_ms) return false;
  if (!cluster.empty() && e.event.cluster != cluster) return false;
  if (families.empty() && types.empty()) return true;
  const std::string& type = e.event.type;
  const std::string family = type.substr(0, type.find('.'));
  return std::find(families.begin(), families.end(), family) != families.end() ||
         std::find(types.begin(), types.end(), type) != types.end();
}

void HttpApi::eventRoutes() {
  server_->Get(R"(/api/v1/deployments/([^/]+)/events)", [this](const httplib::Request& req,
                                                               httplib::Response& res) {
    std::string id = req.matches[1];
    auto d = loadById(store_, id);
    if (!d.ok()) return replyError(res, d.status());
    uint64_t after = afterParam(req);
    auto filter = EventFilter::fromQuery(req);
    if (!filter.ok()) return replyError(res, filter.status());
    if (req.get_header_value("Accept").find("text/event-stream") == std::string::npos) {
      auto events = store_.events(id, after, kEventPage * 100);
      if (!events.ok()) return replyError(res, events.status());
      json list = json::array();
      for (const auto& e : *events) {
        if (filter->matches(e)) list.push_back(eventJson(e));
      }
      reply(res, 200, json{{"events", list}});
      return;
    }
    // A stream holds its connection's thread for as long as it lasts: capped in all and per
    // token, past which the caller is told to come back (503) rather than queued.
    auto actor = caller(req, res);
    if (!actor) return;
    auto slot = streams_.acquire(actor->name);
    if (!slot) {
      metrics_.httpRefused("streams_full");
      res.set_header("Retry-After", "5");
      reply(res, 503,
            json{{"error", "too many event streams open (at most " +
                               std::to_string(limits_.streams_per_token) + " per token, " +
                               std::to_string(limits_.max_streams) +
                               " in all): retry later, or poll ?after=SEQ"}});
      return;
    }
    watch_.markStreaming(req.remote_addr, req.remote_port);
    res.set_header("Cache-Control", "no-cache");
    auto last = std::make_shared<uint64_t>(after);
    // A browser's EventSource hands `onmessage` only frames without an `event:` line: the
    // dashboard asks for those with ?plain=1 (the type is in the data as well).
    const bool plain = req.get_param_value("plain") == "1";
    auto first = std::make_shared<bool>(true);
    res.set_chunked_content_provider("text/event-stream", [this, id, last, slot, first, plain,
                                                           filter = *filter](
                                                              size_t, httplib::DataSink& sink) {
      (void)slot;  // held for as long as the stream lasts
      if (*first) {
        // A browser reconnects a second after the stream breaks (a coordinator restart).
        static const char kRetry[] = "retry: 1000\n\n";
        if (!sink.write(kRetry, sizeof(kRetry) - 1)) return false;
        *first = false;
      }
      uint64_t seen = commits_.current();
      auto events = store_.events(id, *last, kEventPage);
      if (!events.ok()) return false;
      for (const auto& e : *events) {
        if (!filter.matches(e)) {
          *last = e.seq;
          continue;
        }
        std::string frame =
            "id: " + std::to_string(e.seq) + (plain ? std::string() : "\nevent: " + e.event.type) +
            "\ndata: " + eventJson(e).dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
        if (!sink.write(frame.data(), frame.size())) return false;
        *last = e.seq;
      }
      if (events->size() == kEventPage) return true;  // more to send right away
      // Whether it is over: the deployment's header alone (its state and last event), never
      // its cluster records, which a wake of every stream would read 10,000 of.
      auto header = store_.getRecord("deployment/" + id);
      if (!header.ok() || !*header) return false;
      auto d = deploymentFromStored(**header, StoredClusters{}, /*header_only=*/true);
      if (!d.ok()) return false;
      if (isFinal(d->state) && d->last_event_seq <= *last) {
        sink.done();
        return true;
      }
      if (commits_.stopping()) return false;
      // Wake on the next commit; the timeout doubles as a keep-alive.
      if (commits_.waitAfter(seen, std::chrono::seconds(15)) == seen) {
        static const char kKeepAlive[] = ": keep-alive\n\n";
        if (!sink.write(kKeepAlive, sizeof(kKeepAlive) - 1)) return false;
      }
      return true;
    });
  });
}

}  // namespace flotilla::coordinator
