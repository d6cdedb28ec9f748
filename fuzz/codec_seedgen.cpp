// Writes the seed corpus of the codec fuzz target: one well-formed frame per message type,
// then damaged ones (truncated, odd sizes, bad segment tables, bad pointers, an unknown
// message type). The bytes are committed; rerun this when the schema changes.
#include <capnp/message.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/codec.hpp"

namespace {

using flotilla::common::DecodedEnvelope;
using flotilla::common::encodeFrame;
namespace schema = flotilla::schema;
using Bytes = std::vector<uint8_t>;

Bytes frameOf(capnp::MessageBuilder& message) {
  zmq::message_t frame = encodeFrame(message);
  const auto* p = static_cast<const uint8_t*>(frame.data());
  return Bytes(p, p + frame.size());
}

void fillRef(schema::StageRef::Builder ref) {
  ref.setDeploymentId("checkout-12");
  ref.setStageId("prod-eu-1/apply");
  ref.setAttempt(2);
}

void putU32(Bytes& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, sizeof(v)); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  int failures = 0;
  auto write = [&](const std::string& name, const Bytes& bytes, bool should_decode) {
    std::ofstream(dir + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    const bool decoded = DecodedEnvelope::decode(bytes.data(), bytes.size()).ok();
    std::printf("%-28s %6zu bytes  %s\n", name.c_str(), bytes.size(),
                decoded ? "decodes" : "refused");
    if (decoded != should_decode) {
      std::fprintf(stderr, "%s: expected it to be %s\n", name.c_str(),
                   should_decode ? "decoded" : "refused");
      ++failures;
    }
  };

  Bytes reg;
  {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initRegister();
    r.setCluster("prod-eu-1");
    auto labels = r.initLabels(2);
    labels[0].setKey("environment");
    labels[0].setValue("production");
    labels[1].setKey("region");
    labels[1].setValue("eu");
    r.setAgentVersion("0.1.0");
    auto held = r.initHeld(1);
    fillRef(held[0].initRef());
    held[0].setOutcome(schema::Outcome::FAILED);
    held[0].setExitCode(3);
    held[0].setMessage("verify failed");
    r.setLastEpoch(7);
    reg = frameOf(m);
    write("register.bin", reg, true);
  }
  {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initRegistered();
    r.setEpoch(8);
    r.setHeartbeatIntervalMs(1000);
    write("registered.bin", frameOf(m), true);
  }
  {
    capnp::MallocMessageBuilder m;
    m.initRoot<schema::Envelope>().initReregister().setEpoch(9);
    write("reregister.bin", frameOf(m), true);
  }
  {
    capnp::MallocMessageBuilder m;
    auto h = m.initRoot<schema::Envelope>().initHeartbeat();
    h.setCluster("staging-eu");
    h.setEpoch(8);
    h.setRunningStages(1);
    write("heartbeat.bin", frameOf(m), true);
  }
  {
    capnp::MallocMessageBuilder m;
    auto c = m.initRoot<schema::Envelope>().initStageCommand();
    fillRef(c.initRef());
    c.setEpoch(8);
    c.setStep(schema::Step::SHIFT);
    c.setCommand("kubectl apply -f k8s/production/");
    c.setTimeoutMs(300000);
    auto env = c.initEnv(1);
    env[0].setKey("FLOTILLA_VERSION");
    env[0].setValue("1.4.2");
    c.setUnusedSpecJson(R"({"weight":10,"replicas":2})");
    write("stage_command.bin", frameOf(m), true);
  }
  {
    capnp::MallocMessageBuilder m;
    auto p = m.initRoot<schema::Envelope>().initStageProgress();
    fillRef(p.initRef());
    auto lines = p.initLines(3);
    lines.set(0, "building");
    lines.set(1, "");
    lines.set(2, "\x1b[31mred\x1b[0m \xff\xfe not utf-8");
    p.setDroppedLines(5);
    write("stage_progress.bin", frameOf(m), true);
  }
  {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    fillRef(r.initRef());
    r.setEpoch(8);
    r.setOutcome(schema::Outcome::TIMED_OUT);
    r.setExitCode(-9);
    r.setMessage("killed after 300s");
    r.setDurationMs(300001);
    write("stage_result.bin", frameOf(m), true);
  }
  {
    capnp::MallocMessageBuilder m;
    auto a = m.initRoot<schema::Envelope>().initAbort();
    fillRef(a.initRef());
    a.setEpoch(8);
    a.setReason("operator cancelled");
    write("abort.bin", frameOf(m), true);
  }
  {
    // Decodes; the coordinator's handler then refuses it (a NaN error rate).
    capnp::MallocMessageBuilder m;
    auto f = m.initRoot<schema::Envelope>().initFigures();
    fillRef(f.initRef());
    f.setEpoch(8);
    f.setWindow(2);
    f.setWindowMs(30000);
    auto c = f.initCandidate();
    c.setVersion("2.0.0");
    c.setRequests(420);
    c.setErrorRate(std::numeric_limits<double>::quiet_NaN());
    f.initStable().setVersion("1.0.0");
    f.setVerdict(schema::WindowVerdict::FAIL);
    write("figures.bin", frameOf(m), true);
  }
  {
    // Large but legal: many labels and long text.
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initRegister();
    r.setCluster(std::string(4000, 'c'));
    auto labels = r.initLabels(500);
    for (unsigned i = 0; i < labels.size(); ++i) {
      labels[i].setKey("k" + std::to_string(i));
      labels[i].setValue("v");
    }
    write("register_many_labels.bin", frameOf(m), true);
  }

  // Damaged frames, all derived from the register frame.
  write("empty.bin", {}, false);
  write("one_byte.bin", {0x00}, false);
  write("truncated.bin", Bytes(reg.begin(), reg.end() - 8), false);
  write("header_only.bin", Bytes(reg.begin(), reg.begin() + 8), false);
  {
    Bytes b = reg;
    b.insert(b.end(), {1, 2, 3});
    write("odd_size.bin", b, false);
  }
  {
    Bytes b = reg;
    putU32(b, 0, 0x7fffffff);  // segment count far beyond the frame
    write("huge_segment_count.bin", b, false);
  }
  {
    Bytes b = reg;
    putU32(b, 4, 0x10000000);  // first segment far longer than the frame
    write("huge_segment_size.bin", b, false);
  }
  {
    Bytes b = reg;
    putU32(b, 8, 0x0ffffff0u << 2);  // root pointer far outside the segment
    write("root_out_of_bounds.bin", b, false);
  }
  {
    Bytes b = reg;
    b[16] = 0x2a;  // the Envelope's union discriminant: no such message type
    write("unknown_type.bin", b, false);
  }
  {
    Bytes b = reg;
    // Every pointer word after the root becomes a far pointer into a missing segment.
    for (size_t at = 24; at + 8 <= b.size(); at += 8) {
      if ((b[at] & 3) == 1) putU32(b, at, 0xfffffff2u);
    }
    write("bad_list_pointers.bin", b, false);
  }
  {
    Bytes b(64, 0xff);
    write("all_ones.bin", b, false);
  }
  return failures == 0 ? 0 : 1;
}
