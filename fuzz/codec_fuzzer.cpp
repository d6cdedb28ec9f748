// Fuzz target for the frame decoder (common/codec.cpp), which sees every ZeroMQ frame an agent
// or a coordinator receives. A frame is refused with Corruption, or it decodes into an envelope
// whose every field can be read (a read may throw kj::Exception, which both endpoints catch,
// but never reads out of bounds) and which encodes and decodes again.
#include <capnp/message.h>
#include <capnp/pretty-print.h>
#include <kj/exception.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/codec.hpp"
#include "fuzz/fuzz_check.hpp"

using flotilla::common::DecodedEnvelope;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodedEnvelope::decode(data, size);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == flotilla::common::Status::Code::kCorruption,
               decoded.status().message());
    FUZZ_CHECK(!decoded.status().message().empty(), "refused without a reason");
    return 0;
  }
  const auto root = (*decoded)->root();
  FUZZ_CHECK(std::strcmp(flotilla::common::messageTypeName(root.which()), "unknown") != 0,
             std::to_string(static_cast<unsigned>(root.which())));

  // Every field of every struct, through the schema: more than any handler reads.
  try {
    kj::String text = capnp::prettyPrint(root).flatten();
    (void)text;
  } catch (const kj::Exception&) {
  }

  // What decoded must re-encode into a frame that decodes, unless the copy outgrows the limit.
  bool copied = false;
  capnp::MallocMessageBuilder builder;
  try {
    builder.setRoot(root);
    copied = true;
  } catch (const kj::Exception&) {
  }
  if (copied) {
    zmq::message_t frame = flotilla::common::encodeFrame(builder);
    if (frame.size() <= flotilla::common::kMaxFrameBytes) {
      auto again = DecodedEnvelope::decode(frame.data(), frame.size());
      FUZZ_CHECK(again.ok(), again.status().message());
      FUZZ_CHECK((*again)->root().which() == root.which(), "message type changed");
    }
  }
  return 0;
}
