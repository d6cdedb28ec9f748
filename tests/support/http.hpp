// Test support, HTTP client (libcurl): one request, its status and body, no exceptions.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace flotilla::support {

using nlohmann::json;

struct HttpResponse {
  long status = 0;  // 0: no answer (error says why)
  std::string body;
  std::string error;
  std::multimap<std::string, std::string> headers;  // the answer's, names in lower case
  json parsed() const;                              // null when the body is not JSON
};

// libcurl's global set-up, done once (the helpers here call it; so does anything else in the
// test that uses libcurl, before it starts threads).
void initCurl();

HttpResponse httpGet(const std::string& url);
HttpResponse httpPost(const std::string& url, const std::string& body,
                      const std::string& content_type = "application/json");
// Any method, with these headers (e.g. {"Authorization", "Bearer ..."}, {"Host", ...}); `body`
// null: none is sent. `ca_file`: the CA an https:// server's certificate must chain to.
HttpResponse httpRequest(const std::string& method, const std::string& url,
                         const std::map<std::string, std::string>& headers,
                         const std::string* body = nullptr, const std::string& ca_file = "");

}  // namespace flotilla::support
