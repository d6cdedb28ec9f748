// Tests for envelope encoding and the defensive decoder (common/codec.cpp): every message type
// round-trips, and hostile or damaged frames are refused with Corruption instead of crashing.
#include "common/codec.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>
#include <kj/exception.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace flotilla::common {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the hand-made frames below are written in Cap'n Proto's (little-endian) byte order");

using Bytes = std::vector<uint8_t>;

Bytes frameOf(capnp::MessageBuilder& message) {
  zmq::message_t frame = encodeFrame(message);
  const auto* p = static_cast<const uint8_t*>(frame.data());
  return Bytes(p, p + frame.size());
}

StatusOr<std::unique_ptr<DecodedEnvelope>> decodeBytes(const Bytes& bytes) {
  return DecodedEnvelope::decode(bytes.data(), bytes.size());
}

void fillRef(schema::StageRef::Builder ref, const char* deployment, const char* stage,
             uint32_t attempt) {
  ref.setDeploymentId(deployment);
  ref.setStageId(stage);
  ref.setAttempt(attempt);
}

void expectRef(schema::StageRef::Reader ref, const char* deployment, const char* stage,
               uint32_t attempt) {
  EXPECT_EQ(toStd(ref.getDeploymentId()), deployment);
  EXPECT_EQ(toStd(ref.getStageId()), stage);
  EXPECT_EQ(ref.getAttempt(), attempt);
}

// Reads every field a handler could read. A frame that passed decode may still throw
// kj::Exception on access (e.g. text without its NUL); the endpoints catch that, so the only
// requirement here is: no crash, no hang, no out-of-bounds read.
void touchEverything(schema::Envelope::Reader root) {
  std::string sink;
  auto touchRef = [&](schema::StageRef::Reader r) {
    sink += toStd(r.getDeploymentId());
    sink += toStd(r.getStageId());
    sink += std::to_string(r.getAttempt());
  };
  auto touchLabels = [&](capnp::List<schema::Label>::Reader labels) {
    for (auto l : labels) {
      sink += toStd(l.getKey());
      sink += toStd(l.getValue());
    }
  };
  try {
    switch (root.which()) {
      case schema::Envelope::REGISTER: {
        auto m = root.getRegister();
        sink += toStd(m.getCluster());
        touchLabels(m.getLabels());
        sink += toStd(m.getAgentVersion());
        for (auto h : m.getHeld()) {
          touchRef(h.getRef());
          sink += std::to_string(h.getRunning()) +
                  std::to_string(static_cast<int>(h.getOutcome())) +
                  std::to_string(h.getExitCode());
        }
        sink += std::to_string(m.getLastEpoch());
        sink += toStd(m.getEnrollToken());
        break;
      }
      case schema::Envelope::REFUSED:
        sink +=
            toStd(root.getRefused().getReason()) + std::to_string(root.getRefused().getRetryable());
        break;
      case schema::Envelope::FIGURES: {
        auto m = root.getFigures();
        touchRef(m.getRef());
        sink += toStd(m.getCandidate().getVersion()) + toStd(m.getStable().getVersion());
        sink += std::to_string(m.getErrorRateLimit() + m.getCandidate().getErrorRate());
        break;
      }
      case schema::Envelope::REGISTERED: {
        auto m = root.getRegistered();
        sink += std::to_string(m.getEpoch() + m.getHeartbeatIntervalMs());
        break;
      }
      case schema::Envelope::REREGISTER:
        sink += std::to_string(root.getReregister().getEpoch());
        break;
      case schema::Envelope::HEARTBEAT: {
        auto m = root.getHeartbeat();
        sink += toStd(m.getCluster()) + std::to_string(m.getEpoch() + m.getRunningStages());
        break;
      }
      case schema::Envelope::STAGE_COMMAND: {
        auto m = root.getStageCommand();
        touchRef(m.getRef());
        sink += std::to_string(m.getEpoch()) + std::to_string(static_cast<int>(m.getStep()));
        sink += toStd(m.getCommand()) + std::to_string(m.getTimeoutMs());
        touchLabels(m.getEnv());
        break;
      }
      case schema::Envelope::STAGE_PROGRESS: {
        auto m = root.getStageProgress();
        touchRef(m.getRef());
        for (auto line : m.getLines()) sink += toStd(line);
        sink += std::to_string(m.getDroppedLines());
        break;
      }
      case schema::Envelope::STAGE_RESULT: {
        auto m = root.getStageResult();
        touchRef(m.getRef());
        sink += std::to_string(m.getEpoch()) + std::to_string(static_cast<int>(m.getOutcome()));
        sink += std::to_string(m.getExitCode()) + toStd(m.getMessage());
        sink += std::to_string(m.getDurationMs());
        break;
      }
      case schema::Envelope::ABORT: {
        auto m = root.getAbort();
        touchRef(m.getRef());
        sink += std::to_string(m.getEpoch()) + toStd(m.getReason());
        break;
      }
      case schema::Envelope::ALERT: {
        auto m = root.getAlert();
        touchRef(m.getRef());
        sink += std::to_string(m.getEpoch()) + toStd(m.getRule()) + toStd(m.getVersion());
        sink += std::to_string(m.getValue() + m.getThreshold() + m.getBaseline());
        sink += toStd(m.getMessage());
        break;
      }
    }
  } catch (const kj::Exception&) {
    // What the endpoints do with it: drop the message.
  }
  EXPECT_LE(sink.size(), kMaxFrameBytes * 2);
}

// Decodes `bytes` expecting either a refusal with Corruption or a message that can be read.
void expectRefusedOrReadable(const Bytes& bytes) {
  auto decoded = decodeBytes(bytes);
  if (decoded.ok()) {
    touchEverything((*decoded)->root());
  } else {
    EXPECT_TRUE(decoded.status().isCorruption()) << decoded.status().toString();
  }
}

void expectCorruption(const Bytes& bytes, const std::string& what) {
  auto decoded = decodeBytes(bytes);
  ASSERT_FALSE(decoded.ok()) << what << " was accepted";
  EXPECT_TRUE(decoded.status().isCorruption()) << what << ": " << decoded.status().toString();
}

// A StageCommand with every field set: the frame the mutation tests start from.
Bytes sampleCommandFrame() {
  capnp::MallocMessageBuilder message;
  auto cmd = message.initRoot<schema::Envelope>().initStageCommand();
  fillRef(cmd.initRef(), "checkout-7", "eu-west-1/apply", 2);
  cmd.setEpoch(42);
  cmd.setStep(schema::Step::APPLY);
  cmd.setCommand("kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/");
  cmd.setTimeoutMs(300000);
  auto env = cmd.initEnv(2);
  env[0].setKey("FLOTILLA_VERSION");
  env[0].setValue("1.4.2");
  env[1].setKey("FLOTILLA_ENVIRONMENT");
  env[1].setValue("production");
  return frameOf(message);
}

// ---- Hand-made frames -----------------------------------------------------------------------

uint64_t word(uint32_t lo, uint32_t hi) { return uint64_t{lo} | (uint64_t{hi} << 32); }

// Struct pointer: offset (in words, from the end of the pointer) and section sizes.
uint64_t structPtr(int32_t offset, uint16_t data_words, uint16_t ptr_words) {
  return word(static_cast<uint32_t>(offset) << 2, data_words | (uint32_t{ptr_words} << 16));
}

// List pointer; element size codes: 0 void, 2 byte, 6 pointer, 7 inline composite.
uint64_t listPtr(int32_t offset, uint32_t element_size, uint32_t count) {
  return word((static_cast<uint32_t>(offset) << 2) | 1, element_size | (count << 3));
}

uint64_t farPtr(uint32_t pad_offset, uint32_t segment) {
  return word((pad_offset << 3) | 2, segment);
}

// A frame from segments of words, with the segment table in front.
Bytes frameFromSegments(const std::vector<std::vector<uint64_t>>& segments) {
  std::vector<uint32_t> table;
  table.push_back(static_cast<uint32_t>(segments.size() - 1));
  for (const auto& s : segments) table.push_back(static_cast<uint32_t>(s.size()));
  if (table.size() % 2 != 0) table.push_back(0);
  Bytes out(table.size() * sizeof(uint32_t));
  std::memcpy(out.data(), table.data(), out.size());
  for (const auto& s : segments) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    out.insert(out.end(), p, p + s.size() * sizeof(uint64_t));
  }
  return out;
}

// Byte offset of the root struct's data section in a single-segment frame.
size_t rootDataOffset(const Bytes& frame) {
  uint32_t segments_minus_one = 0;
  std::memcpy(&segments_minus_one, frame.data(), 4);
  EXPECT_EQ(segments_minus_one, 0u) << "expected a single-segment frame";
  uint32_t lo = 0;
  std::memcpy(&lo, frame.data() + 8, 4);
  EXPECT_EQ(lo & 3, 0u) << "root is not a struct pointer";
  const int32_t offset = static_cast<int32_t>(lo) >> 2;
  return static_cast<size_t>(8 + 8 + static_cast<int64_t>(offset) * 8);
}

// ---- Round trips ----------------------------------------------------------------------------

TEST(CodecRoundTrip, Register) {
  capnp::MallocMessageBuilder message;
  auto reg = message.initRoot<schema::Envelope>().initRegister();
  reg.setCluster("eu-west-1");
  auto labels = reg.initLabels(2);
  labels[0].setKey("environment");
  labels[0].setValue("production");
  labels[1].setKey("region");
  labels[1].setValue("eu");
  reg.setAgentVersion("0.1.0");
  auto held = reg.initHeld(2);
  fillRef(held[0].initRef(), "checkout-7", "eu-west-1/apply", 1);
  held[0].setRunning(true);
  held[0].setOutcome(schema::Outcome::UNKNOWN);
  fillRef(held[1].initRef(), "checkout-6", "eu-west-1/verify", 3);
  held[1].setRunning(false);
  held[1].setOutcome(schema::Outcome::FAILED);
  held[1].setExitCode(-2);
  reg.setLastEpoch(41);

  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  auto root = (*decoded)->root();
  ASSERT_EQ(root.which(), schema::Envelope::REGISTER);
  auto r = root.getRegister();
  EXPECT_EQ(toStd(r.getCluster()), "eu-west-1");
  ASSERT_EQ(r.getLabels().size(), 2u);
  EXPECT_EQ(toStd(r.getLabels()[0].getKey()), "environment");
  EXPECT_EQ(toStd(r.getLabels()[0].getValue()), "production");
  EXPECT_EQ(toStd(r.getLabels()[1].getKey()), "region");
  EXPECT_EQ(toStd(r.getLabels()[1].getValue()), "eu");
  EXPECT_EQ(toStd(r.getAgentVersion()), "0.1.0");
  ASSERT_EQ(r.getHeld().size(), 2u);
  expectRef(r.getHeld()[0].getRef(), "checkout-7", "eu-west-1/apply", 1);
  EXPECT_TRUE(r.getHeld()[0].getRunning());
  EXPECT_EQ(r.getHeld()[0].getOutcome(), schema::Outcome::UNKNOWN);
  expectRef(r.getHeld()[1].getRef(), "checkout-6", "eu-west-1/verify", 3);
  EXPECT_FALSE(r.getHeld()[1].getRunning());
  EXPECT_EQ(r.getHeld()[1].getOutcome(), schema::Outcome::FAILED);
  EXPECT_EQ(r.getHeld()[1].getExitCode(), -2);
  EXPECT_EQ(r.getLastEpoch(), 41u);
}

TEST(CodecRoundTrip, Registered) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initRegistered();
  m.setEpoch(UINT64_MAX);
  m.setHeartbeatIntervalMs(1500);
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::REGISTERED);
  EXPECT_EQ((*decoded)->root().getRegistered().getEpoch(), UINT64_MAX);
  EXPECT_EQ((*decoded)->root().getRegistered().getHeartbeatIntervalMs(), 1500u);
}

TEST(CodecRoundTrip, Reregister) {
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::Envelope>().initReregister().setEpoch(43);
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::REREGISTER);
  EXPECT_EQ((*decoded)->root().getReregister().getEpoch(), 43u);
}

TEST(CodecRoundTrip, Heartbeat) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initHeartbeat();
  m.setCluster("us-east-2");
  m.setEpoch(7);
  m.setRunningStages(3);
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::HEARTBEAT);
  auto h = (*decoded)->root().getHeartbeat();
  EXPECT_EQ(toStd(h.getCluster()), "us-east-2");
  EXPECT_EQ(h.getEpoch(), 7u);
  EXPECT_EQ(h.getRunningStages(), 3u);
}

TEST(CodecRoundTrip, StageCommand) {
  auto decoded = decodeBytes(sampleCommandFrame());
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::STAGE_COMMAND);
  auto c = (*decoded)->root().getStageCommand();
  expectRef(c.getRef(), "checkout-7", "eu-west-1/apply", 2);
  EXPECT_EQ(c.getEpoch(), 42u);
  EXPECT_EQ(c.getStep(), schema::Step::APPLY);
  EXPECT_EQ(toStd(c.getCommand()), "kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/");
  EXPECT_EQ(c.getTimeoutMs(), 300000u);
  ASSERT_EQ(c.getEnv().size(), 2u);
  EXPECT_EQ(toStd(c.getEnv()[0].getKey()), "FLOTILLA_VERSION");
  EXPECT_EQ(toStd(c.getEnv()[0].getValue()), "1.4.2");
  EXPECT_EQ(toStd(c.getEnv()[1].getKey()), "FLOTILLA_ENVIRONMENT");
  EXPECT_EQ(toStd(c.getEnv()[1].getValue()), "production");
}

TEST(CodecRoundTrip, StageProgress) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initStageProgress();
  fillRef(m.initRef(), "checkout-7", "eu-west-1/build", 1);
  const std::vector<std::string> lines = {"step 1/3", "", "ünïcödé ✓", std::string(4096, 'x')};
  auto list = m.initLines(static_cast<unsigned>(lines.size()));
  for (size_t i = 0; i < lines.size(); ++i) list.set(static_cast<unsigned>(i), lines[i]);
  m.setDroppedLines(12);
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::STAGE_PROGRESS);
  auto p = (*decoded)->root().getStageProgress();
  expectRef(p.getRef(), "checkout-7", "eu-west-1/build", 1);
  ASSERT_EQ(p.getLines().size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(toStd(p.getLines()[static_cast<unsigned>(i)]), lines[i]) << "line " << i;
  }
  EXPECT_EQ(p.getDroppedLines(), 12u);
}

TEST(CodecRoundTrip, StageResult) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initStageResult();
  fillRef(m.initRef(), "checkout-7", "eu-west-1/verify", 4);
  m.setEpoch(42);
  m.setOutcome(schema::Outcome::TIMED_OUT);
  m.setExitCode(137);
  m.setMessage("killed by SIGKILL");
  m.setDurationMs(300001);
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::STAGE_RESULT);
  auto r = (*decoded)->root().getStageResult();
  expectRef(r.getRef(), "checkout-7", "eu-west-1/verify", 4);
  EXPECT_EQ(r.getEpoch(), 42u);
  EXPECT_EQ(r.getOutcome(), schema::Outcome::TIMED_OUT);
  EXPECT_EQ(r.getExitCode(), 137);
  EXPECT_EQ(toStd(r.getMessage()), "killed by SIGKILL");
  EXPECT_EQ(r.getDurationMs(), 300001u);
}

TEST(CodecRoundTrip, Abort) {
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initAbort();
  fillRef(m.initRef(), "checkout-7", "eu-west-1/apply", 2);
  m.setEpoch(9);
  m.setReason("deployment cancelled");
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::ABORT);
  auto a = (*decoded)->root().getAbort();
  expectRef(a.getRef(), "checkout-7", "eu-west-1/apply", 2);
  EXPECT_EQ(a.getEpoch(), 9u);
  EXPECT_EQ(toStd(a.getReason()), "deployment cancelled");
}

TEST(CodecRoundTrip, EveryOutcomeAndStepSurvives) {
  for (auto outcome :
       {schema::Outcome::SUCCEEDED, schema::Outcome::FAILED, schema::Outcome::TIMED_OUT,
        schema::Outcome::ABORTED, schema::Outcome::UNKNOWN, schema::Outcome::REFUSED}) {
    capnp::MallocMessageBuilder message;
    message.initRoot<schema::Envelope>().initStageResult().setOutcome(outcome);
    auto decoded = decodeBytes(frameOf(message));
    ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
    EXPECT_EQ((*decoded)->root().getStageResult().getOutcome(), outcome);
  }
  for (auto step :
       {schema::Step::BUILD, schema::Step::APPLY, schema::Step::VERIFY, schema::Step::ROLLBACK}) {
    capnp::MallocMessageBuilder message;
    message.initRoot<schema::Envelope>().initStageCommand().setStep(step);
    auto decoded = decodeBytes(frameOf(message));
    ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
    EXPECT_EQ((*decoded)->root().getStageCommand().getStep(), step);
  }
}

TEST(CodecRoundTrip, EmptyEnvelopeIsARegisterWithDefaults) {
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::Envelope>();
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::REGISTER);
  EXPECT_EQ(toStd((*decoded)->root().getRegister().getCluster()), "");
  EXPECT_EQ((*decoded)->root().getRegister().getHeld().size(), 0u);
}

TEST(CodecRoundTrip, MultiSegmentMessageWithFarPointers) {
  // One-word segments force every object into its own segment, reached through far pointers.
  capnp::MallocMessageBuilder message(1, capnp::AllocationStrategy::FIXED_SIZE);
  auto m = message.initRoot<schema::Envelope>().initStageProgress();
  fillRef(m.initRef(), "checkout-7", "eu-west-1/build", 1);
  auto list = m.initLines(20);
  for (unsigned i = 0; i < 20; ++i) list.set(i, "line " + std::to_string(i));
  ASSERT_GT(message.getSegmentsForOutput().size(), 10u);
  auto decoded = decodeBytes(frameOf(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  auto p = (*decoded)->root().getStageProgress();
  expectRef(p.getRef(), "checkout-7", "eu-west-1/build", 1);
  ASSERT_EQ(p.getLines().size(), 20u);
  for (unsigned i = 0; i < 20; ++i) EXPECT_EQ(toStd(p.getLines()[i]), "line " + std::to_string(i));
}

TEST(CodecRoundTrip, UnalignedInputIsCopiedAndDecoded) {
  Bytes frame = sampleCommandFrame();
  Bytes shifted(frame.size() + 1);
  std::memcpy(shifted.data() + 1, frame.data(), frame.size());
  auto decoded = DecodedEnvelope::decode(shifted.data() + 1, frame.size());
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  EXPECT_EQ(toStd((*decoded)->root().getStageCommand().getCommand()),
            "kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/");
}

TEST(CodecRoundTrip, DecodedEnvelopeOwnsItsCopy) {
  Bytes frame = sampleCommandFrame();
  auto decoded = decodeBytes(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  std::fill(frame.begin(), frame.end(), 0xAB);
  frame.clear();
  frame.shrink_to_fit();
  expectRef((*decoded)->root().getStageCommand().getRef(), "checkout-7", "eu-west-1/apply", 2);
}

TEST(CodecRoundTrip, FrameNearTheLimitCanBeReadInFull) {
  // Decode's validation walk must leave a handler enough traversal budget to read a frame just
  // under kMaxFrameBytes once, field by field.
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initStageProgress();
  fillRef(m.initRef(), "checkout-7", "eu-west-1/build", 1);
  constexpr unsigned kLines = 1000;  // lines of the longest length an agent sends
  auto list = m.initLines(kLines);
  for (unsigned i = 0; i < kLines; ++i) list.set(i, std::string(4096, 'a' + i % 26));
  Bytes frame = frameOf(message);
  ASSERT_LT(frame.size(), kMaxFrameBytes);
  ASSERT_GT(frame.size(), kMaxFrameBytes * 9 / 10);
  auto decoded = decodeBytes(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  size_t total = 0;
  try {
    for (auto line : (*decoded)->root().getStageProgress().getLines()) total += line.size();
  } catch (const kj::Exception& e) {
    ADD_FAILURE() << "reading a decoded frame threw: " << e.getDescription().cStr();
  }
  EXPECT_EQ(total, size_t{kLines} * 4096);
}

// ---- messageTypeName ------------------------------------------------------------------------

TEST(MessageTypeName, CoversEveryUnionMember) {
  const std::vector<std::pair<schema::Envelope::Which, std::string>> expected = {
      {schema::Envelope::REGISTER, "register"},
      {schema::Envelope::REGISTERED, "registered"},
      {schema::Envelope::REREGISTER, "reregister"},
      {schema::Envelope::HEARTBEAT, "heartbeat"},
      {schema::Envelope::STAGE_COMMAND, "stage_command"},
      {schema::Envelope::STAGE_PROGRESS, "stage_progress"},
      {schema::Envelope::STAGE_RESULT, "stage_result"},
      {schema::Envelope::ABORT, "abort"},
      {schema::Envelope::ALERT, "alert"},
      {schema::Envelope::REFUSED, "refused"},
      {schema::Envelope::FIGURES, "figures"},
  };
  // The schema has exactly these members: FIGURES is the last union tag.
  ASSERT_EQ(static_cast<unsigned>(schema::Envelope::FIGURES) + 1, expected.size());
  std::set<std::string> seen;
  for (const auto& [which, name] : expected) {
    EXPECT_EQ(messageTypeName(which), name);
    seen.insert(messageTypeName(which));
  }
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_STREQ(messageTypeName(static_cast<schema::Envelope::Which>(11)), "unknown");
  EXPECT_STREQ(messageTypeName(static_cast<schema::Envelope::Which>(0xFFFF)), "unknown");
}

// ---- Garbage and hostile frames ----------------------------------------------------------------

TEST(CodecDecode, EmptyFrameIsRefused) {
  uint8_t byte = 0;
  auto decoded = DecodedEnvelope::decode(&byte, 0);
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(decoded.status().isCorruption()) << decoded.status().toString();
  auto null_decoded = DecodedEnvelope::decode(nullptr, 0);
  ASSERT_FALSE(null_decoded.ok());
  EXPECT_TRUE(null_decoded.status().isCorruption());
}

TEST(CodecDecode, SevenBytesAreRefused) {
  expectCorruption(Bytes(7, 0), "7 zero bytes");
  Bytes frame = sampleCommandFrame();
  expectCorruption(Bytes(frame.begin(), frame.begin() + 7), "the first 7 bytes of a frame");
}

TEST(CodecDecode, FramesThatAreNotWholeWordsAreRefused) {
  Bytes frame = sampleCommandFrame();
  for (size_t extra = 1; extra < 8; ++extra) {
    Bytes padded = frame;
    padded.resize(frame.size() + extra, 0);
    expectCorruption(padded, "frame + " + std::to_string(extra) + " bytes");
  }
}

TEST(CodecDecode, ZeroWordsAreRefused) {
  // A segment table of one empty segment: no room for the root pointer.
  expectCorruption(Bytes(8, 0), "one zero word");
}

TEST(CodecDecode, RandomBytesAreRefused) {
  std::mt19937_64 rng(0xF107111A);
  std::uniform_int_distribution<size_t> size_dist(1, 2048);
  std::uniform_int_distribution<int> byte_dist(0, 255);
  for (int i = 0; i < 3000; ++i) {
    size_t size = size_dist(rng);
    if (i % 2 == 0) size = (size + 7) / 8 * 8;  // half of them pass the whole-word check
    Bytes bytes(size);
    for (auto& b : bytes) b = static_cast<uint8_t>(byte_dist(rng));
    auto decoded = decodeBytes(bytes);
    ASSERT_FALSE(decoded.ok()) << "random frame " << i << " of " << size << " bytes was accepted";
    ASSERT_TRUE(decoded.status().isCorruption()) << decoded.status().toString();
  }
}

TEST(CodecDecode, RandomBodiesBehindAValidSegmentTableNeverCrash) {
  // Past the segment table, so the pointer checks are what stands between the bytes and a crash.
  std::mt19937_64 rng(20260127);
  std::uniform_int_distribution<uint32_t> words_dist(1, 64);
  std::uniform_int_distribution<int> kind_dist(0, 3);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    const uint32_t words = words_dist(rng);
    std::vector<uint64_t> segment(words);
    for (auto& w : segment) {
      switch (kind_dist(rng)) {
        case 0:
          w = 0;
          break;  // null pointers and zeroed data are common in real frames
        case 1:
          w = rng() & 0x0000FFFF'FFFFFFFFull;
          break;
        case 2:
          w = structPtr(static_cast<int32_t>(rng() % 16) - 4, rng() % 3, rng() % 3);
          break;
        default:
          w = rng();
          break;
      }
    }
    Bytes frame = frameFromSegments({segment});
    auto decoded = decodeBytes(frame);
    if (decoded.ok()) {
      ++accepted;
      touchEverything((*decoded)->root());
    } else {
      ASSERT_TRUE(decoded.status().isCorruption()) << decoded.status().toString();
    }
  }
  // Some of these are well formed, so both paths ran.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 3000);
}

// A frame of many one-word segments: its segment table is long and its pointers are far.
Bytes manySegmentFrame() {
  capnp::MallocMessageBuilder message(1, capnp::AllocationStrategy::FIXED_SIZE);
  auto m = message.initRoot<schema::Envelope>().initStageProgress();
  fillRef(m.initRef(), "checkout-7", "eu-west-1/build", 1);
  m.initLines(3).set(0, "first");
  return frameOf(message);
}

TEST(CodecDecode, TruncatedAtEveryWordBoundaryIsRefused) {
  for (const Bytes& frame : {sampleCommandFrame(), manySegmentFrame()}) {
    ASSERT_TRUE(decodeBytes(frame).ok());
    for (size_t cut = 0; cut < frame.size(); cut += 8) {
      expectCorruption(
          Bytes(frame.begin(), frame.begin() + static_cast<ptrdiff_t>(cut)),
          "frame cut at " + std::to_string(cut) + " of " + std::to_string(frame.size()) + " bytes");
    }
  }
}

TEST(CodecDecode, TruncatedAtEveryByteIsRefused) {
  Bytes frame = sampleCommandFrame();
  for (size_t cut = 0; cut < frame.size(); ++cut) {
    expectCorruption(Bytes(frame.begin(), frame.begin() + static_cast<ptrdiff_t>(cut)),
                     "frame cut at byte " + std::to_string(cut));
  }
}

TEST(CodecDecode, FlippedBytesNeverCrash) {
  for (const Bytes& frame : {sampleCommandFrame(), manySegmentFrame()}) {
    int refused = 0;
    for (size_t i = 0; i < frame.size(); ++i) {
      for (uint8_t mask : {0x01, 0x04, 0x10, 0x80, 0xFF}) {
        Bytes damaged = frame;
        damaged[i] ^= mask;
        auto decoded = decodeBytes(damaged);
        if (decoded.ok()) {
          touchEverything((*decoded)->root());
        } else {
          ++refused;
          ASSERT_TRUE(decoded.status().isCorruption()) << decoded.status().toString();
        }
      }
    }
    // Damage to the segment table or the pointers must be caught.
    EXPECT_GT(refused, 0);
  }
}

TEST(CodecDecode, DamagedSegmentTableIsRefused) {
  Bytes frame = sampleCommandFrame();
  for (uint32_t size : {0u, 1u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    Bytes damaged = frame;
    std::memcpy(damaged.data() + 4, &size, 4);
    // Size 1 keeps only the root pointer: the root struct is then out of bounds.
    expectCorruption(damaged, "segment size " + std::to_string(size));
  }
}

TEST(CodecDecode, SegmentTableClaimingHugeSizesIsRefused) {
  // One segment claiming 4 Gi words.
  expectCorruption(Bytes{0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "segment of 0xFFFFFFFF words");
  // Segment count fields that are huge or wrap to zero when one is added.
  for (uint32_t count_minus_one : {0xFFFFFFFFu, 0xFFFFFFFEu, 0x7FFFFFFFu, 511u, 4096u}) {
    Bytes frame(64, 0);
    std::memcpy(frame.data(), &count_minus_one, 4);
    expectCorruption(frame, "segment count - 1 = " + std::to_string(count_minus_one));
  }
  // Two segments whose sizes add up past the end.
  std::vector<uint32_t> table = {1, 2, 0xFFFFFFF0u, 0};
  Bytes frame(table.size() * 4 + 16, 0);
  std::memcpy(frame.data(), table.data(), table.size() * 4);
  expectCorruption(frame, "second segment past the end");
}

TEST(CodecDecode, FrameOverTheLimitIsRefusedBeforeParsing) {
  Bytes frame = sampleCommandFrame();
  frame.resize(kMaxFrameBytes + 8, 0);  // a valid message with padding behind it
  auto decoded = decodeBytes(frame);
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(decoded.status().isCorruption());
  EXPECT_NE(decoded.status().message().find("limit"), std::string::npos)
      << decoded.status().message();
  // The size check comes first: a frame one byte over is refused for its size, not its alignment.
  frame.resize(kMaxFrameBytes + 1);
  auto odd = decodeBytes(frame);
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.status().message().find("limit"), std::string::npos) << odd.status().message();
}

TEST(CodecDecode, FrameOfExactlyTheLimitIsAccepted) {
  Bytes frame = sampleCommandFrame();
  frame.resize(kMaxFrameBytes, 0);  // trailing words after the segments are not looked at
  auto decoded = decodeBytes(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  EXPECT_EQ((*decoded)->root().getStageCommand().getEpoch(), 42u);
}

TEST(CodecDecode, UnionTagBeyondTheLastMemberIsRefused) {
  const Bytes frame = sampleCommandFrame();
  const size_t tag_at = rootDataOffset(frame);
  uint16_t tag = 0;
  std::memcpy(&tag, frame.data() + tag_at, 2);
  ASSERT_EQ(tag, static_cast<uint16_t>(schema::Envelope::STAGE_COMMAND)) << "tag not found";
  for (uint16_t bad : {uint16_t{11}, uint16_t{12}, uint16_t{0x7FFF}, uint16_t{0xFFFF}}) {
    Bytes damaged = frame;
    std::memcpy(damaged.data() + tag_at, &bad, 2);
    expectCorruption(damaged, "union tag " + std::to_string(bad));
  }
  // Every known tag over the same bytes is accepted by decode (its handler may refuse it).
  for (uint16_t good = 0; good <= static_cast<uint16_t>(schema::Envelope::FIGURES); ++good) {
    Bytes changed = frame;
    std::memcpy(changed.data() + tag_at, &good, 2);
    auto decoded = decodeBytes(changed);
    ASSERT_TRUE(decoded.ok()) << "tag " << good << ": " << decoded.status().toString();
    EXPECT_EQ(static_cast<uint16_t>((*decoded)->root().which()), good);
    touchEverything((*decoded)->root());
  }
}

TEST(CodecDecode, PointerToItselfIsRefused) {
  // Root -> struct with one pointer -> a struct pointer whose target is the pointer itself.
  expectCorruption(frameFromSegments({{structPtr(0, 0, 1), structPtr(-1, 0, 1)}}),
                   "struct pointer loop");
  // The same loop through a list of pointers.
  expectCorruption(frameFromSegments({{structPtr(0, 0, 1), listPtr(-1, 6, 1)}}),
                   "list pointer loop");
}

TEST(CodecDecode, TwoPointersPointingAtEachOtherAreRefused) {
  // word 1 -> word 3 (struct with one pointer: word 3), word 3 -> word 1.
  expectCorruption(
      frameFromSegments({{structPtr(0, 0, 1), structPtr(1, 0, 1), 0, structPtr(-3, 0, 1)}}),
      "two-pointer loop");
}

std::vector<uint64_t> nestedChain(int depth) {
  // Root pointer, then `depth` structs of one pointer each, each pointing at the next word.
  std::vector<uint64_t> words;
  for (int i = 0; i < depth; ++i) words.push_back(structPtr(0, 0, 1));
  words.push_back(0);
  return words;
}

TEST(CodecDecode, DeeplyNestedStructsAreRefused) {
  // Shallow chains decode (they show the hand-made encoding is right) ...
  auto shallow = decodeBytes(frameFromSegments({nestedChain(4)}));
  ASSERT_TRUE(shallow.ok()) << shallow.status().toString();
  touchEverything((*shallow)->root());
  // ... deep ones hit the nesting limit.
  expectCorruption(frameFromSegments({nestedChain(64)}), "64 nested structs");
  expectCorruption(frameFromSegments({nestedChain(5000)}), "5000 nested structs");
}

TEST(CodecDecode, ManyPointersToOneBlobHitTheTraversalLimit) {
  // Root -> struct with `fanout` list pointers, all to the same 512 KiB byte blob: a small
  // frame that would make a reader walk fanout x 512 KiB.
  auto amplified = [](uint16_t fanout) {
    constexpr uint32_t kBlobWords = 65536;
    std::vector<uint64_t> words = {structPtr(0, 0, 1), structPtr(0, 0, fanout)};
    const int32_t blob_at = 2 + fanout;
    for (int32_t p = 2; p < blob_at; ++p)
      words.push_back(listPtr(blob_at - p - 1, 2, kBlobWords * 8));
    words.resize(words.size() + kBlobWords, 0x6161616161616161ull);
    return frameFromSegments({words});
  };
  auto few = decodeBytes(amplified(2));
  ASSERT_TRUE(few.ok()) << few.status().toString();
  expectCorruption(amplified(64), "64 pointers to one 512 KiB blob");
}

TEST(CodecDecode, PointersOutOfTheSegmentAreRefused) {
  expectCorruption(frameFromSegments({{structPtr(100, 1, 1)}}), "struct past the end");
  expectCorruption(frameFromSegments({{structPtr(-5, 1, 1), 0}}), "struct before the start");
  expectCorruption(frameFromSegments({{structPtr(0, 0, 1), listPtr(0, 2, 1000), 0}}),
                   "byte list past the end");
  // Inline composite list whose tag claims more elements than its words hold.
  expectCorruption(
      frameFromSegments({{structPtr(0, 0, 1), listPtr(0, 7, 2),
                          /* tag: 50 elements of 1 data word */ structPtr(50, 1, 0), 0, 0}}),
      "inline composite list over its size");
}

TEST(CodecDecode, FarPointersToMissingSegmentsAreRefused) {
  expectCorruption(frameFromSegments({{farPtr(0, 5)}}), "far pointer to segment 5 of 1");
  expectCorruption(frameFromSegments({{farPtr(0, 1)}, {}}), "landing pad past an empty segment");
  // A landing pad that is itself a far pointer back to the start.
  expectCorruption(frameFromSegments({{farPtr(0, 1)}, {farPtr(0, 0)}}), "far pointer chain");
}

TEST(CodecDecode, HugeListOfEmptyElementsDoesNotHang) {
  // Register.held as a list of 2^29 - 1 zero-sized elements: no bytes, a lot of elements.
  expectRefusedOrReadable(frameFromSegments(
      {{structPtr(0, 0, 1), structPtr(0, 1, 4), 0, 0, 0, 0, listPtr(0, 0, (1u << 29) - 1)}}));
}

TEST(CodecDecode, TextWithoutTerminatorNeverCrashes) {
  // Heartbeat.cluster as a byte list whose last byte is not NUL. Decode does not check text
  // terminators (its walk only checks bounds); reading the field then throws kj::Exception,
  // which the endpoints catch. Either outcome is fine; a crash is not.
  std::vector<uint64_t> words = {structPtr(0, 1, 1), word(3, 0),           structPtr(0, 2, 1), 0, 0,
                                 listPtr(0, 2, 8),   0x6161616161616161ull};
  auto decoded = decodeBytes(frameFromSegments({words}));
  if (!decoded.ok()) {
    EXPECT_TRUE(decoded.status().isCorruption());
    return;
  }
  ASSERT_EQ((*decoded)->root().which(), schema::Envelope::HEARTBEAT);
  EXPECT_THROW((void)(*decoded)->root().getHeartbeat().getCluster(), kj::Exception);
}

}  // namespace
}  // namespace flotilla::common
