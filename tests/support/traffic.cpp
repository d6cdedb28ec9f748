// Test support, HTTP traffic through a load balancer.
#include "tests/support/traffic.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "tests/support/files.hpp"
#include "tests/support/http.hpp"

namespace flotilla::support {

namespace {

constexpr size_t kFailuresKept = 5;

size_t appendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// Keeps the X-Version header of the answer.
size_t keepVersionHeader(char* data, size_t size, size_t count, void* out) {
  const std::string line(data, size * count);
  const std::string name = "x-version:";
  if (line.size() > name.size()) {
    std::string head = line.substr(0, name.size());
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (head == name) *static_cast<std::string*>(out) = trim(line.substr(name.size()));
  }
  return size * count;
}

// One request on `curl` (whose URL and options are set).
Answer request(CURL* curl) {
  Answer answer;
  answer.sent = std::chrono::system_clock::now();
  std::string body;
  std::string header_version;
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &header_version);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    answer.error = curl_easy_strerror(rc);
    return answer;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  const std::string prefix = "checkout ";
  if (answer.status == 200 && body.compare(0, prefix.size(), prefix) == 0) {
    answer.version = trim(body.substr(prefix.size()));
  } else {
    answer.version = header_version;
  }
  return answer;
}

CURL* newHandle(const std::string& url) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return nullptr;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, appendBody);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, keepVersionHeader);
  return curl;
}

}  // namespace

std::string Answer::describe() const {
  if (status == 0) return "no answer (" + error + ")";
  return "HTTP " + std::to_string(status) + " from " + (version.empty() ? "?" : version);
}

size_t Tally::of(const std::string& version) const {
  auto it = by_version.find(version);
  return it == by_version.end() ? 0 : it->second;
}

size_t Tally::withStatus(long status) const {
  auto it = by_status.find(status);
  return it == by_status.end() ? 0 : it->second;
}

double Tally::share(const std::string& version) const {
  return total == 0 ? 0.0 : static_cast<double>(of(version)) / static_cast<double>(total);
}

std::string Tally::describe() const {
  std::ostringstream out;
  out << total << " requests, " << failed << " failed";
  for (const auto& [version, n] : by_version) {
    out << ", " << n << " answered by " << (version.empty() ? "(unknown)" : version);
  }
  if (!first_failures.empty()) {
    out << "; first failures:";
    for (const auto& f : first_failures) out << " [" << f << "]";
  }
  return out.str();
}

Tally tally(const std::vector<Answer>& answers) {
  return tallyBetween(answers, SystemTime::min(), SystemTime::max());
}

Tally tallyBetween(const std::vector<Answer>& answers, SystemTime from, SystemTime to) {
  Tally t;
  for (const Answer& a : answers) {
    if (a.sent <= from || a.sent >= to) continue;
    ++t.total;
    ++t.by_status[a.status];
    if (!a.version.empty() || a.status != 0) ++t.by_version[a.version];
    if (a.failed()) {
      ++t.failed;
      if (t.first_failures.size() < kFailuresKept) t.first_failures.push_back(a.describe());
    }
  }
  return t;
}

std::vector<Answer> sendRequests(const std::string& url, int count) {
  initCurl();
  std::vector<Answer> out;
  CURL* curl = newHandle(url);
  if (curl == nullptr) {
    ADD_FAILURE() << "curl_easy_init failed";
    return out;
  }
  for (int i = 0; i < count; ++i) out.push_back(request(curl));
  curl_easy_cleanup(curl);
  return out;
}

TrafficGenerator::TrafficGenerator(std::string url, int workers, std::chrono::milliseconds pace)
    : url_(std::move(url)), workers_(workers), pace_(pace) {
  initCurl();  // before the threads start: curl_global_init is not thread-safe
}

TrafficGenerator::~TrafficGenerator() { stop(); }

void TrafficGenerator::start() {
  if (running()) return;
  stop_ = false;
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { work(); });
}

void TrafficGenerator::stop() {
  stop_ = true;
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::vector<Answer> TrafficGenerator::answers() const {
  std::vector<Answer> out;
  {
    std::lock_guard lock(mu_);
    out = answers_;
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Answer& a, const Answer& b) { return a.sent < b.sent; });
  return out;
}

size_t TrafficGenerator::count() const {
  std::lock_guard lock(mu_);
  return answers_.size();
}

void TrafficGenerator::work() {
  CURL* curl = newHandle(url_);
  if (curl == nullptr) return;  // seen as "no traffic" by the test
  auto next = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    Answer answer = request(curl);
    {
      std::lock_guard lock(mu_);
      answers_.push_back(std::move(answer));
    }
    next += pace_;
    const auto now = std::chrono::steady_clock::now();
    if (next > now) {
      std::this_thread::sleep_for(next - now);
    } else {
      next = now;  // a slow answer does not turn into a burst afterwards
    }
  }
  curl_easy_cleanup(curl);
}

}  // namespace flotilla::support
