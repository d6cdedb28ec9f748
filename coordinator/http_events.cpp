// A deployment's events: a JSON page after a sequence number, or with `Accept:
// text/event-stream` a live SSE stream that wakes on each commit and ends when the deployment
// is final. Streams hold a thread each, so they are capped in all and per token.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

constexpr size_t kEventPage = 1000;

json eventJson(const StoredEvent& e) {
  return json{{"seq", e.seq},
              {"time", rfc3339(e.time_ms)},
              {"type", e.event.type},
              {"wave", e.event.wave},
              {"cluster", e.event.cluster},
              {"step", e.event.step},
              {"message", e.event.message}};
}

uint64_t afterParam(const httplib::Request& req) {
  if (!req.has_param("after")) return 0;
  try {
    return std::stoull(req.get_param_value("after"));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

void HttpApi::eventRoutes() {
  server_->Get(R"(/api/v1/deployments/([^/]+)/events)", [this](const httplib::Request& req,
                                                               httplib::Response& res) {
    std::string id = req.matches[1];
    auto d = loadById(store_, id);
    if (!d.ok()) return replyError(res, d.status());
    uint64_t after = afterParam(req);
    if (req.get_header_value("Accept").find("text/event-stream") == std::string::npos) {
      auto events = store_.events(id, after, kEventPage * 100);
      if (!events.ok()) return replyError(res, events.status());
      json list = json::array();
      for (const auto& e : *events) list.push_back(eventJson(e));
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
    res.set_chunked_content_provider(
        "text/event-stream", [this, id, last, slot](size_t, httplib::DataSink& sink) {
          (void)slot;  // held for as long as the stream lasts
          uint64_t seen = commits_.current();
          auto events = store_.events(id, *last, kEventPage);
          if (!events.ok()) return false;
          for (const auto& e : *events) {
            std::string frame = "id: " + std::to_string(e.seq) + "\nevent: " + e.event.type +
                                "\ndata: " + eventJson(e).dump() + "\n\n";
            if (!sink.write(frame.data(), frame.size())) return false;
            *last = e.seq;
          }
          if (events->size() == kEventPage) return true;  // more to send right away
          auto d = store_.loadDeployment(id);
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
