// HTTPS on the API: a client that trusts the test's own CA is served (harness requests, the
// CLI, agents enrolled through it); plain HTTP to the TLS port and a client that does not
// trust the CA get nothing; the coordinator refuses a non-loopback listen without TLS and a
// certificate it cannot use.
#include <filesystem>
#include <memory>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// A CA and a server certificate for 127.0.0.1 and localhost signed by it, made with the
// openssl command line (Debian's openssl package) in `dir`.
struct TestPki {
  std::string ca;
  std::string cert;
  std::string key;
};

void makePki(const std::string& dir, TestPki* pki) {
  const std::string ca_key = dir + "/ca.key";
  pki->ca = dir + "/ca.pem";
  pki->key = dir + "/server.key";
  pki->cert = dir + "/server.pem";
  const std::string csr = dir + "/server.csr";
  const std::string ext = dir + "/server.ext";
  writeFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const std::vector<std::vector<std::string>> steps = {
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key, "-out", pki->ca, "-days", "2",
       "-subj", "/CN=flotilla test CA"},
      {"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", pki->key, "-out", csr, "-subj", "/CN=127.0.0.1"},
      {"/usr/bin/openssl", "x509", "-req", "-in", csr, "-CA", pki->ca, "-CAkey", ca_key,
       "-CAcreateserial", "-out", pki->cert, "-days", "2", "-extfile", ext},
  };
  for (const auto& argv : steps) {
    CommandResult r = runCommand(argv, dir, 30s);
    ASSERT_EQ(r.exit_code, 0) << "openssl " << argv[1] << " failed:\n" << r.out << r.err;
  }
  std::filesystem::permissions(
      pki->key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

class TlsTest : public FleetTest {
 protected:
  CoordinatorOptions tlsOptions() {
    CoordinatorOptions options;
    options.tls_cert = pki_.cert;
    options.tls_key = pki_.key;
    options.tls_ca = pki_.ca;
    return options;
  }
  void SetUp() override {
    FleetTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(makePki(dir() + "/scratch", &pki_));
  }
  TestPki pki_;
};

TEST_F(TlsTest, ClientTrustingTheCaIsServedAndAgentsEnrollThroughIt) {
  // startFleet enrolls its four agents with tokens fetched over HTTPS.
  ASSERT_NO_FATAL_FAILURE(startFleet(tlsOptions()));
  ASSERT_EQ(serverUrl().rfind("https://", 0), 0u);
  HttpResponse agents = get("/api/v1/agents");
  EXPECT_EQ(agents.status, 200) << agents.error << agents.body;

  // The CLI, given the CA through FLOTILLA_CA_CERT (the harness sets it).
  const std::string plan = writePlan(
      "plan.yaml",
      noopPlan("tls", "1.0.0", {waveSelecting("staging", "environment: staging")}).yaml());
  const std::string id = submit(plan);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(waitForState(id, "succeeded"));
  CommandResult status = cli({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;

  // The same CLI without the CA refuses the certificate, and says so.
  CommandResult untrusted = runCommand({FLOTILLA_CLI_BIN, "--server", serverUrl(), "status", id},
                                       dir() + "/scratch", 30s, {{"FLOTILLA_TOKEN", adminToken()}});
  EXPECT_EQ(untrusted.exit_code, 2) << untrusted.out << untrusted.err;
  EXPECT_NE(untrusted.err.find("certificate"), std::string::npos) << untrusted.err;
}

TEST_F(TlsTest, PlainHttpAndUntrustingClientsGetNothing) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator(tlsOptions()));
  const std::string port = serverUrl().substr(serverUrl().rfind(':') + 1);

  // Plain HTTP to the TLS port: no HTTP answer at all (the handshake fails).
  HttpResponse plain = httpRequest("GET", "http://127.0.0.1:" + port + "/healthz", {});
  EXPECT_EQ(plain.status, 0) << plain.body;
  HttpResponse plain_api = httpRequest("GET", "http://127.0.0.1:" + port + "/api/v1/agents",
                                       {{"Authorization", "Bearer " + adminToken()}});
  EXPECT_EQ(plain_api.status, 0) << plain_api.body;

  // HTTPS without trusting the CA: the client refuses the certificate.
  HttpResponse untrusted = httpRequest("GET", serverUrl() + "/healthz", {});
  EXPECT_EQ(untrusted.status, 0);
  EXPECT_FALSE(untrusted.error.empty());

  // The coordinator is unharmed and answers a trusting client.
  HttpResponse ok = get("/api/v1/agents");
  EXPECT_EQ(ok.status, 200) << ok.error << ok.body;
  EXPECT_EQ(request("GET", "/healthz", "").status, 200);
}

// The coordinator, run with `flags` on a fresh data dir (through `prefix`), refuses to start
// (exit 1) and says `why`.
void expectRefusal(const std::string& dir, const std::vector<std::string>& flags,
                   const std::string& why, const std::vector<std::string>& prefix = {}) {
  std::vector<std::string> argv = prefix;
  argv.insert(argv.end(), {FLOTILLA_COORDINATOR_BIN, "--data-dir", dir + "/refused-data",
                           "--listen-agents", "tcp://127.0.0.1:0"});
  argv.insert(argv.end(), flags.begin(), flags.end());
  CommandResult refused = runCommand(argv, dir + "/scratch", 30s);
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find(why), std::string::npos) << refused.err;
}

// The refusals happen before anything listens. The non-loopback case runs in a network
// namespace of its own (unshare -n), so even a wrong answer could not expose a port.
TEST_F(TlsTest, RefusesNonLoopbackWithoutTlsAndUnusableCertificates) {
  expectRefusal(dir(), {"--listen-http", "0.0.0.0:7780"}, "without TLS",
                {"/usr/bin/unshare", "-n"});
  expectRefusal(dir(), {"--listen-http", "127.0.0.1:0", "--tls-cert", pki_.cert}, "--tls-key");
  // A key that does not match the certificate (the CA's certificate with the server's key).
  expectRefusal(dir(),
                {"--listen-http", "127.0.0.1:0", "--tls-cert", pki_.ca, "--tls-key", pki_.key},
                "TLS certificate");
  // A private key others may read is refused.
  std::filesystem::permissions(pki_.key, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  expectRefusal(dir(),
                {"--listen-http", "127.0.0.1:0", "--tls-cert", pki_.cert, "--tls-key", pki_.key},
                "readable by others");
}

}  // namespace
}  // namespace flotilla::integration
