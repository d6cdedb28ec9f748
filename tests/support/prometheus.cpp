// Test support, a real Prometheus server for one test.
#include "tests/support/prometheus.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "tests/support/files.hpp"
#include "tests/support/http.hpp"
#include "tests/support/net.hpp"
#include "tests/support/wait.hpp"

#ifndef FLOTILLA_PROMETHEUS_BIN
#error "FLOTILLA_PROMETHEUS_BIN must be defined by CMake"
#endif

namespace flotilla::support {

namespace {

constexpr auto kStartDeadline = 60s;  // a cold start replays an empty WAL: a few seconds

std::string config(int first_port, int count) {
  std::string targets;
  for (int p = first_port; p < first_port + count; ++p) {
    targets += (targets.empty() ? "" : ", ") + std::string("'127.0.0.1:") + std::to_string(p) + "'";
  }
  return "global:\n"
         "  scrape_interval: 500ms\n"
         "  scrape_timeout: 400ms\n"
         "  evaluation_interval: 1s\n"
         "scrape_configs:\n"
         "  - job_name: replicas\n"
         "    static_configs:\n"
         "      - targets: [" +
         targets + "]\n";
}

std::string urlEncode(const std::string& text) {
  initCurl();
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr) return "";
  std::string out = escaped;
  curl_free(escaped);
  return out;
}

}  // namespace

std::unique_ptr<Prometheus> Prometheus::start(const std::string& dir, int first_port, int count) {
  const std::string config_path = dir + "/prometheus.yml";
  writeFile(config_path, config(first_port, count));
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const int port = freePort();
    if (port == 0) break;
    const std::string log_path = dir + "/prometheus." + std::to_string(attempt) + ".log";
    auto process = Process::spawn(
        "prometheus",
        {FLOTILLA_PROMETHEUS_BIN, "--config.file=" + config_path,
         "--storage.tsdb.path=" + dir + "/prometheus-data",
         "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"},
        {}, log_path);
    if (process == nullptr) return nullptr;
    std::unique_ptr<Prometheus> server(new Prometheus(port, std::move(process)));
    const bool up = pollUntil(
        [&] {
          return !server->process_->running() || httpGet(server->url() + "/-/ready").status == 200;
        },
        kStartDeadline, 100ms);
    const bool exited = !server->process_->running();
    if (up && !exited) return server;
    std::cerr << "[prometheus] did not come up on port " << port << (exited ? " (exited)" : "")
              << ":\n"
              << tailOf(log_path, 10);
    if (!exited) break;
  }
  ADD_FAILURE() << "Prometheus did not come up (" << FLOTILLA_PROMETHEUS_BIN << ")";
  return nullptr;
}

Prometheus::~Prometheus() { stop(); }

std::string Prometheus::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

bool Prometheus::scrapes(const std::string& instance_regex) {
  HttpResponse reply = httpGet(
      url() + "/api/v1/query?query=" + urlEncode("min(up{instance=~\"" + instance_regex + "\"})"));
  if (reply.status != 200) return false;
  json doc = reply.parsed();
  if (!doc.is_object()) return false;
  const json& result = doc["data"]["result"];
  return result.is_array() && result.size() == 1 && result[0]["value"][1] == "1";
}

std::optional<double> Prometheus::value(const std::string& promql) {
  HttpResponse reply = httpGet(url() + "/api/v1/query?query=" + urlEncode(promql));
  if (reply.status != 200) return std::nullopt;
  json doc = reply.parsed();
  if (!doc.is_object()) return std::nullopt;
  const json& result = doc["data"]["result"];
  if (!result.is_array() || result.size() != 1 || !result[0]["value"][1].is_string()) {
    return std::nullopt;
  }
  return std::strtod(result[0]["value"][1].get<std::string>().c_str(), nullptr);
}

void Prometheus::stop() {
  if (process_) process_->stop(10s);
}

}  // namespace flotilla::support
