// Envelope encoding and defensive decoding of frames received from the network.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstddef>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "common/status.hpp"
#include "flotilla.capnp.h"

namespace flotilla::common {

// Frames over this size are refused before any parsing.
inline constexpr size_t kMaxFrameBytes = 4 * 1024 * 1024;

// A decoded, fully validated envelope. Owns the word-aligned copy of the
// frame: Cap'n Proto 0.9 needs aligned input, ZeroMQ frames are not.
class DecodedEnvelope {
 public:
  // Copies `size` bytes, checks size, alignment, traversal and nesting
  // limits, and walks the whole message once so later field access cannot
  // hit an out-of-bounds pointer.
  static StatusOr<std::unique_ptr<DecodedEnvelope>> decode(const void* data, size_t size);

  schema::Envelope::Reader root() const { return root_; }

 private:
  DecodedEnvelope() = default;
  kj::Array<capnp::word> words_;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
  schema::Envelope::Reader root_;
};

// Serialises a built message into one ZeroMQ frame.
zmq::message_t encodeFrame(capnp::MessageBuilder& message);

// Short name of the envelope's message type, for logs and metrics.
const char* messageTypeName(schema::Envelope::Which which);

// kj::StringPtr / capnp::Text::Reader to std::string without surprises.
inline std::string toStd(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }

}  // namespace flotilla::common
