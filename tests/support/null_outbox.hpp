// Test support: an Outbox with no agent behind it, for a coordinator run in process without its
// agent endpoint (HTTP tests, the HTTP fuzzer). Header only: the fuzz targets include it without
// the test-support library.
#pragma once

#include <string>

#include "coordinator/outbox.hpp"

namespace flotilla::support {

// Nothing is connected: what the engine sends goes nowhere.
class NullOutbox : public coordinator::Outbox {
 public:
  void send(const std::string&, capnp::MessageBuilder&) override {}
  void sendTo(const std::string&, capnp::MessageBuilder&) override {}
  void bindCluster(const std::string&, const std::string&) override {}
  bool connectionOpen(const std::string&) const override { return false; }
  void dropConnection(const std::string&) override {}
};

}  // namespace flotilla::support
