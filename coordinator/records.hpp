// The store's per-cluster and per-event records (schema/store.capnp): what a turn of the
// engine writes by the thousand. Encoded as a flat Cap'n Proto message; decoding also takes
// the JSON records written before (a value starting with '{').
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "coordinator/deployment.hpp"

namespace flotilla::coordinator {

struct StoredEvent {
  uint64_t seq = 0;
  int64_t time_ms = 0;
  Event event;
};

std::string encodeClusterRecord(const ClusterProgress& c);
// Corruption when the bytes are neither record form, or hold a state out of range.
common::StatusOr<ClusterProgress> decodeClusterRecord(std::string_view bytes);

std::string encodeEventRecord(uint64_t seq, int64_t time_ms, const Event& e);
common::StatusOr<StoredEvent> decodeEventRecord(std::string_view bytes);

}  // namespace flotilla::coordinator
