// The store's per-cluster and per-event records.
#include "coordinator/records.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "store.capnp.h"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;

namespace {

// A record is a few hundred bytes; an output line at most 2 KiB.
constexpr uint64_t kTraversalLimitWords = (1u << 20) / sizeof(capnp::word);

// Words for one segment that holds the whole record (no second allocation, no far pointers).
unsigned segmentWords(size_t text_bytes) {
  return static_cast<unsigned>(24 + text_bytes / sizeof(capnp::word));
}

// A std::string as Text, all of it: the implicit conversion goes through c_str() and would stop
// at a NUL inside peer text.
capnp::Text::Reader textOf(const std::string& s) { return capnp::Text::Reader(s.data(), s.size()); }

std::string flatBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Reads a flat message from bytes of any alignment; `fn` gets the root and returns a StatusOr.
// Corruption on anything that does not decode.
template <typename Root, typename Fn>
auto readFlat(std::string_view bytes, const char* what, Fn fn)
    -> decltype(fn(std::declval<typename Root::Reader>())) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return Status::Corruption(std::string(what) + " record has " + std::to_string(bytes.size()) +
                              " bytes, not whole words");
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = kTraversalLimitWords;
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    return fn(reader.getRoot<Root>());
  } catch (const kj::Exception& e) {
    return Status::Corruption(std::string(what) +
                              " record does not decode: " + e.getDescription().cStr());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string(what) + " record does not decode: " + e.what());
  }
}

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

}  // namespace

std::string encodeClusterRecord(const ClusterProgress& c) {
  const std::string figures = c.figures ? common::figuresToJson(*c.figures).dump() : "";
  capnp::MallocMessageBuilder message(segmentWords(c.name.size() + c.previous_version.size() +
                                                   c.message.size() + c.promoted_by.size() +
                                                   figures.size() + c.figures_stage.size()));
  auto r = message.initRoot<schema::ClusterRecord>();
  r.setName(textOf(c.name));
  r.setState(static_cast<uint8_t>(c.state));
  r.setStep(c.step ? static_cast<int8_t>(*c.step) : int8_t{-1});
  r.setStepIndex(c.step_index);
  r.setAttempt(c.attempt);
  r.setInFlight(c.in_flight);
  r.setAbortSent(c.abort_sent);
  r.setAgentLost(c.agent_lost);
  r.setRollbackLost(c.rollback_lost);
  r.setApplied(c.applied);
  r.setPreviousVersion(textOf(c.previous_version));
  r.setMessage(textOf(c.message));
  r.setHasExitCode(c.exit_code.has_value());
  r.setExitCode(c.exit_code.value_or(0));
  r.setPromotedBy(textOf(c.promoted_by));
  r.setHeld(c.held);
  r.setFigures(textOf(figures));
  r.setFiguresStage(textOf(c.figures_stage));
  return flatBytes(message);
}

StatusOr<ClusterProgress> decodeClusterRecord(std::string_view bytes) {
  if (!bytes.empty() && bytes.front() == '{') return clusterFromJsonText(bytes);
  return readFlat<schema::ClusterRecord>(
      bytes, "cluster", [](schema::ClusterRecord::Reader r) -> StatusOr<ClusterProgress> {
        // The count of each, as coordinator/deployment.hpp and common/steps.hpp declare them.
        if (r.getState() >= static_cast<uint8_t>(kClusterStateCount) || r.getStep() < -1 ||
            r.getStep() > static_cast<int8_t>(common::kLastStep)) {
          return Status::Corruption("cluster record holds state " + std::to_string(r.getState()) +
                                    ", step " + std::to_string(r.getStep()));
        }
        ClusterProgress c;
        c.name = text(r.getName());
        c.state = static_cast<ClusterState>(r.getState());
        if (r.getStep() >= 0) c.step = static_cast<Step>(r.getStep());
        c.step_index = r.getStepIndex();
        c.attempt = r.getAttempt();
        c.in_flight = r.getInFlight();
        c.abort_sent = r.getAbortSent();
        c.agent_lost = r.getAgentLost();
        c.rollback_lost = r.getRollbackLost();
        c.applied = r.getApplied();
        c.previous_version = text(r.getPreviousVersion());
        c.message = text(r.getMessage());
        if (r.getHasExitCode()) c.exit_code = r.getExitCode();
        c.promoted_by = text(r.getPromotedBy());
        c.held = r.getHeld();
        if (r.getFigures().size() > 0) {
          StatusOr<common::AnalysisFigures> figures = common::AnalysisFigures{};
          try {
            figures = common::figuresFromJson(nlohmann::json::parse(text(r.getFigures())));
          } catch (const nlohmann::json::exception& e) {
            figures = Status::InvalidArgument(e.what());
          }
          if (!figures.ok()) {
            return Status::Corruption("cluster record's figures: " + figures.status().message());
          }
          c.figures = std::move(figures).value();
          c.figures_stage = text(r.getFiguresStage());
        }
        return c;
      });
}

std::string encodeEventRecord(uint64_t seq, int64_t time_ms, const Event& e) {
  capnp::MallocMessageBuilder message(segmentWords(e.type.size() + e.wave.size() +
                                                   e.cluster.size() + e.step.size() +
                                                   e.message.size() + e.data.size()));
  auto r = message.initRoot<schema::EventRecord>();
  r.setSeq(seq);
  r.setTimeMs(time_ms);
  r.setType(textOf(e.type));
  r.setWave(textOf(e.wave));
  r.setCluster(textOf(e.cluster));
  r.setStep(textOf(e.step));
  r.setMessage(textOf(e.message));
  r.setData(textOf(e.data));
  return flatBytes(message);
}

StatusOr<StoredEvent> decodeEventRecord(std::string_view bytes) {
  if (!bytes.empty() && bytes.front() == '{') {
    try {
      auto j = nlohmann::json::parse(bytes);
      StoredEvent e;
      e.seq = j.at("seq").get<uint64_t>();
      e.time_ms = j.at("time_ms").get<int64_t>();
      e.event = Event{j.at("type").get<std::string>(), j.at("wave").get<std::string>(),
                      j.at("cluster").get<std::string>(), j.at("step").get<std::string>(),
                      j.at("message").get<std::string>()};
      return e;
    } catch (const std::exception& ex) {
      return Status::Corruption(std::string("event record does not decode: ") + ex.what());
    }
  }
  return readFlat<schema::EventRecord>(
      bytes, "event", [](schema::EventRecord::Reader r) -> StatusOr<StoredEvent> {
        return StoredEvent{r.getSeq(), r.getTimeMs(),
                           Event{text(r.getType()), text(r.getWave()), text(r.getCluster()),
                                 text(r.getStep()), text(r.getMessage()), text(r.getData())}};
      });
}

}  // namespace flotilla::coordinator
