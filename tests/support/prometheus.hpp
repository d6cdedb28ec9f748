// Test support, a real Prometheus server for one test (Debian's `prometheus` package): listens
// on a free 127.0.0.1 port, keeps its data in the test's dir and scrapes every port of a block
// of replica ports on 127.0.0.1 twice a second (ports where nothing listens are simply down
// targets). Owned by its PID: stopped even when the test fails.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "tests/support/process.hpp"

namespace flotilla::support {

class Prometheus {
 public:
  // Writes the config, starts the server and waits until /-/ready answers 200. Records a test
  // failure and returns nullptr when it does not come up.
  static std::unique_ptr<Prometheus> start(const std::string& dir, int first_port, int count);
  ~Prometheus();
  Prometheus(const Prometheus&) = delete;
  Prometheus& operator=(const Prometheus&) = delete;

  // http://127.0.0.1:PORT
  std::string url() const;
  const std::string& logPath() const { return process_->logPath(); }
  // True once every target whose instance matches `instance_regex` has been scraped
  // successfully (up == 1).
  bool scrapes(const std::string& instance_regex);
  // The single number an instant query gives now; nullopt when it gives none (or fails).
  std::optional<double> value(const std::string& promql);
  // SIGTERM by PID (SIGKILL after a grace period), reaped.
  void stop();

 private:
  Prometheus(int port, std::unique_ptr<Process> process)
      : port_(port), process_(std::move(process)) {}

  int port_;
  std::unique_ptr<Process> process_;
};

}  // namespace flotilla::support
