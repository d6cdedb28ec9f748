// Envelope encoding and defensive decoding.
#include "common/codec.hpp"

#include <kj/exception.h>

#include <cstring>

namespace flotilla::common {

namespace {
// Generous for our messages (a progress batch is the largest), small enough
// that a hostile frame cannot make us walk gigabytes.
constexpr uint64_t kTraversalLimitWords = kMaxFrameBytes / sizeof(capnp::word);
constexpr int kNestingLimit = 16;
}  // namespace

StatusOr<std::unique_ptr<DecodedEnvelope>> DecodedEnvelope::decode(const void* data, size_t size) {
  if (size == 0) return Status::Corruption("empty frame");
  if (size > kMaxFrameBytes) {
    return Status::Corruption("frame of " + std::to_string(size) + " bytes is over the " +
                              std::to_string(kMaxFrameBytes) + " byte limit");
  }
  if (size % sizeof(capnp::word) != 0) {
    return Status::Corruption("frame of " + std::to_string(size) +
                              " bytes is not a whole number of words");
  }
  std::unique_ptr<DecodedEnvelope> out(new DecodedEnvelope());
  out->words_ = kj::heapArray<capnp::word>(size / sizeof(capnp::word));
  std::memcpy(out->words_.begin(), data, size);
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = kTraversalLimitWords;
    options.nestingLimit = kNestingLimit;
    out->reader_ = std::make_unique<capnp::FlatArrayMessageReader>(out->words_.asPtr(), options);
    out->root_ = out->reader_->getRoot<schema::Envelope>();
    // Walks every pointer once: a malformed frame throws here, not later in a handler.
    (void)out->root_.totalSize();
    // FIGURES is the union's last member: keep this in step with schema/flotilla.capnp.
    if (static_cast<unsigned>(out->root_.which()) >
        static_cast<unsigned>(schema::Envelope::FIGURES)) {
      return Status::Corruption("unknown message type " +
                                std::to_string(static_cast<unsigned>(out->root_.which())));
    }
  } catch (const kj::Exception& e) {
    return Status::Corruption(std::string("malformed frame: ") + e.getDescription().cStr());
  }
  return out;
}

zmq::message_t encodeFrame(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return zmq::message_t(bytes.begin(), bytes.size());
}

const char* messageTypeName(schema::Envelope::Which which) {
  switch (which) {
    case schema::Envelope::REGISTER:
      return "register";
    case schema::Envelope::REGISTERED:
      return "registered";
    case schema::Envelope::REREGISTER:
      return "reregister";
    case schema::Envelope::HEARTBEAT:
      return "heartbeat";
    case schema::Envelope::STAGE_COMMAND:
      return "stage_command";
    case schema::Envelope::STAGE_PROGRESS:
      return "stage_progress";
    case schema::Envelope::STAGE_RESULT:
      return "stage_result";
    case schema::Envelope::ABORT:
      return "abort";
    case schema::Envelope::ALERT:
      return "alert";
    case schema::Envelope::REFUSED:
      return "refused";
    case schema::Envelope::FIGURES:
      return "figures";
  }
  return "unknown";
}

}  // namespace flotilla::common
