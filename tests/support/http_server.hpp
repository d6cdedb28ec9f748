// Test support, HTTP: a real cpp-httplib server on 127.0.0.1, port 0 (HTTPS when given a
// certificate), serving on its own thread for as long as the object lives, and the last request
// its handlers saw. Register handlers on server() before start(). A stand-in for whatever the
// code under test calls: a replica, a webhook receiver, a coordinator.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace flotilla::support {

class LocalHttpServer {
 public:
  LocalHttpServer() : server_(std::make_unique<httplib::Server>()) {}
  // HTTPS with this PEM certificate and key.
  LocalHttpServer(const std::string& cert_file, const std::string& key_file)
      : server_(std::make_unique<httplib::SSLServer>(cert_file.c_str(), key_file.c_str())),
        scheme_("https") {}
  ~LocalHttpServer() { stop(); }
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  httplib::Server& server() { return *server_; }

  // Binds and serves; returns once the listen loop runs (a stop() before that would be lost
  // and the join would hang).
  void start() {
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  void stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
  }

  int port() const { return port_; }
  bool running() const { return port_ > 0 && server_->is_running(); }
  // "http://127.0.0.1:PORT" (or https), no trailing slash.
  std::string url() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }
  // The URL of `path` ("/hook") on it.
  std::string url(const std::string& path) const { return url() + path; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::string scheme_ = "http";
  int port_ = 0;
  std::thread thread_;
};

// The last request a handler recorded, read from the test's thread.
class LastRequest {
 public:
  void set(const httplib::Request& req) {
    std::lock_guard lock(mu_);
    req_ = req;
  }
  httplib::Request get() {
    std::lock_guard lock(mu_);
    return req_;
  }

 private:
  std::mutex mu_;
  httplib::Request req_;
};

}  // namespace flotilla::support
