// TLS handoff between processes with unmodified clients (curl, Python ssl,
// openssl s_client): the server process A accepts with OpenSSL, freezes the
// connection into an xo::tls::State, and process B continues it on XO's record
// layer (fd passed over a unix socket); then it comes back to A, and so on.
// Everything runs inside a private network namespace on 127.0.0.1.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>

#include "common/tls/test/handoff_harness.h"

namespace xo::tls::testing {
namespace {

std::string client_script() { return std::string(XO_TLS_TEST_DIR) + "/tls_client.py"; }

class Handoff : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for a private network namespace";
    enter_private_netns();
    static PemPair pem = [] {
      auto p = make_self_signed("xo-test");
      EXPECT_TRUE(p.ok());
      return p.ok() ? *p : PemPair{};
    }();
    plan_.tls.cert_pem = pem.cert_pem;
    plan_.tls.key_pem = pem.key_pem;
    char tmpl[] = "/tmp/xo-tls-handoff-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    plan_.log_path = tmpl;
  }
  void TearDown() override {
    if (!plan_.log_path.empty()) ::unlink(plan_.log_path.c_str());
  }

  // Start the servers, run the client, wait for the servers; returns the client's result.
  Command run_with(const std::string& client_cmd_with_port, int timeout_s = 60) {
    int port = 0;
    int lfd = listen_loopback(&port);
    EXPECT_GE(lfd, 0);
    int pid = start_servers(plan_, lfd);
    std::string cmd = std::regex_replace(client_cmd_with_port, std::regex("PORT"), std::to_string(port));
    Command c = run(cmd, timeout_s);
    std::string why;
    server_ok_ = wait_servers(pid, 20, &why);
    server_why_ = why;
    ::close(lfd);
    log_ = read_file(plan_.log_path);
    return c;
  }

  int count(const std::string& needle) const {
    int n = 0;
    for (size_t p = log_.find(needle); p != std::string::npos; p = log_.find(needle, p + 1)) ++n;
    return n;
  }

  void expect_clean_servers() {
    EXPECT_TRUE(server_ok_) << server_why_ << "\nlog:\n" << log_;
    EXPECT_EQ(count("error"), 0) << log_;
  }

  ServerPlan plan_;
  bool server_ok_ = false;
  std::string server_why_, log_;
};

std::string curl_urls(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += " https://127.0.0.1:PORT/" + std::to_string(i);
  return s;
}

// The bodies the request loop answers with: who served request i.
std::string expected_bodies(const std::string& served_by) {
  std::string s;
  for (size_t i = 0; i < served_by.size(); ++i)
    s += "path=/" + std::to_string(i) + " by=" + served_by[i] + " n=" + std::to_string(i) + "\n";
  return s;
}

struct CurlCase {
  const char* name;
  bool tls13;
  const char* suite;  // TLS 1.3 suite or TLS 1.2 cipher
  const char* want_cipher;
};

class CurlHandoff : public Handoff, public ::testing::WithParamInterface<CurlCase> {};

TEST_P(CurlHandoff, KeepAliveAcrossMovesThereAndBack) {
  const CurlCase& c = GetParam();
  if (c.tls13) {
    plan_.tls.ciphersuites = c.suite;
  } else {
    plan_.tls.max_version = TLS1_2_VERSION;
    plan_.tls.cipher_list = c.suite;
  }
  plan_.move_at = {1, 2, 3};  // A→B at 1, B→A at 2, A→B at 3
  std::string flags = c.tls13 ? std::string("--tlsv1.3 --tls13-ciphers ") + c.suite
                              : std::string("--tlsv1.2 --tls-max 1.2 --ciphers ") + c.suite;
  Command r = run_with("curl -sS -k --http1.1 " + flags + curl_urls(6));
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_EQ(r.out, expected_bodies("ABABBB")) << log_;
  EXPECT_EQ(count("freeze "), 3) << log_;
  EXPECT_EQ(count("handshake conn=0"), 1) << "curl must keep one connection\n" << log_;
  EXPECT_NE(log_.find(std::string("cipher=") + c.want_cipher), std::string::npos) << log_;
  expect_clean_servers();
}

INSTANTIATE_TEST_SUITE_P(
    Suites, CurlHandoff,
    ::testing::Values(CurlCase{"tls13_aes128gcm", true, "TLS_AES_128_GCM_SHA256", "aes128gcm"},
                      CurlCase{"tls13_aes256gcm", true, "TLS_AES_256_GCM_SHA384", "aes256gcm"},
                      CurlCase{"tls13_chacha20poly1305", true, "TLS_CHACHA20_POLY1305_SHA256", "chacha20poly1305"},
                      CurlCase{"tls12_aes128gcm", false, "ECDHE-ECDSA-AES128-GCM-SHA256", "aes128gcm"},
                      CurlCase{"tls12_aes256gcm", false, "ECDHE-ECDSA-AES256-GCM-SHA384", "aes256gcm"},
                      CurlCase{"tls12_chacha20poly1305", false, "ECDHE-ECDSA-CHACHA20-POLY1305", "chacha20poly1305"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(Handoff, SequenceNumbersAreCountedWithTwoTickets) {
  plan_.tls.num_tickets = 2;
  plan_.tls.ciphersuites = "TLS_AES_128_GCM_SHA256";
  plan_.move_at = {1};
  Command r = run_with("curl -sS -k --http1.1 --tlsv1.3" + curl_urls(3));
  EXPECT_EQ(r.out, expected_bodies("ABB")) << log_;
  // Two NewSessionTickets, then response 0: the next TX record is number 3.
  EXPECT_NE(log_.find("handshake conn=0 version=TLSv1.3"), std::string::npos) << log_;
  EXPECT_NE(log_.find(" tx_seq=2 "), std::string::npos) << log_;
  EXPECT_NE(log_.find("req=1 by=A backend=openssl version=TLS1.3 cipher=aes128gcm tx_seq=3 rx_seq=2"),
            std::string::npos)
      << log_;
  expect_clean_servers();
}

TEST_F(Handoff, SequenceNumbersAreCountedWithNoTickets) {
  plan_.tls.num_tickets = 0;
  plan_.tls.ciphersuites = "TLS_AES_128_GCM_SHA256";
  plan_.move_at = {1};
  Command r = run_with("curl -sS -k --http1.1 --tlsv1.3" + curl_urls(3));
  EXPECT_EQ(r.out, expected_bodies("ABB")) << log_;
  EXPECT_NE(log_.find("req=1 by=A backend=openssl version=TLS1.3 cipher=aes128gcm tx_seq=1 rx_seq=2"),
            std::string::npos)
      << log_;
  expect_clean_servers();
}

TEST_F(Handoff, FreezeRightAfterTheHandshake) {
  plan_.move_after_handshake = true;
  plan_.move_at = {2};
  Command r = run_with("curl -sS -k --http1.1" + curl_urls(4));
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_EQ(r.out, expected_bodies("BBAA")) << log_;
  expect_clean_servers();
}

class PythonHandoff : public Handoff, public ::testing::WithParamInterface<bool> {};

TEST_P(PythonHandoff, MegabyteDownloadAndUploadCheckedByHash) {
  bool tls12 = GetParam();
  plan_.move_at = {1, 2, 3};
  Command r = run_with(client_script() + " bulk PORT" + (tls12 ? " tls12" : ""));
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_NE(r.out.find("OK bulk"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("path=/last by=B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(tls12 ? "TLSv1.2" : "TLSv1.3"), std::string::npos) << r.out;
  EXPECT_EQ(count("freeze "), 3) << log_;
  expect_clean_servers();
}

TEST_P(PythonHandoff, ResumedSessionMoves) {
  bool tls12 = GetParam();
  plan_.connections = 2;
  plan_.move_at = {1, 3};
  Command r = run_with(client_script() + " resume PORT" + (tls12 ? " tls12" : ""));
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_NE(r.out.find("OK resume reused=True"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("path=/r1 by=B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("path=/r3 by=A"), std::string::npos) << r.out;
  EXPECT_NE(log_.find("handshake conn=1 version=" + std::string(tls12 ? "TLSv1.2" : "TLSv1.3")), std::string::npos);
  EXPECT_NE(log_.find("resumed=1"), std::string::npos) << log_;
  if (!tls12) {
    EXPECT_NE(log_.find("resumed=1 tx_seq=1"), std::string::npos) << "one ticket on resumption\n" << log_;
  }
  expect_clean_servers();
}

INSTANTIATE_TEST_SUITE_P(Versions, PythonHandoff, ::testing::Values(false, true),
                         [](const auto& info) { return std::string(info.param ? "tls12" : "tls13"); });

TEST_F(Handoff, PipelinedRequestsTravelAsUnreadPlaintext) {
  plan_.move_at = {1};
  Command r = run_with(client_script() + " pipeline PORT");
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_NE(r.out.find("path=/p0 by=A"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("path=/p1 by=B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("path=/p3 by=B"), std::string::npos) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log_, m, std::regex("unread=(\\d+)"))) << log_;
  EXPECT_GT(std::stoi(m[1]), 3 * 40) << "all three pipelined requests were carried\n" << log_;
  expect_clean_servers();
}

TEST_F(Handoff, RecordSplitAcrossSegmentsAtTheMove) {
  plan_.move_at = {1};
  plan_.pull_before_freeze = true;
  Command r = run_with(client_script() + " split PORT");
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_NE(r.out.find("OK split"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("path=/s2 by=B"), std::string::npos) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log_, m, std::regex("pending=(\\d+)"))) << log_;
  EXPECT_GT(std::stoi(m[1]), 0) << "the half record was carried as ciphertext\n" << log_;
  expect_clean_servers();
}

TEST_F(Handoff, OpensslClientKeyUpdatesBeforeAndAfterTheMove) {
  plan_.move_at = {1, 3};
  // s_client: "k" = KeyUpdate, "K" = KeyUpdate with update_requested (the server must answer).
  std::string feed =
      "sleep 1; printf \"k\\n\"; sleep 0.3; printf \"GET /0 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n\"; sleep 0.5; "
      "printf \"K\\n\"; sleep 0.3; printf \"GET /1 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n\"; sleep 0.5; "
      "printf \"K\\n\"; sleep 0.3; printf \"GET /2 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n\"; sleep 0.5; "
      "printf \"k\\n\"; sleep 0.3; printf \"GET /3 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n\"; sleep 0.5; "
      "printf \"K\\n\"; sleep 0.3; printf \"GET /4 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n\"; sleep 0.8";
  Command r = run_with("(" + feed + ") | openssl s_client -brief -connect 127.0.0.1:PORT -tls1_3", 60);
  for (const char* want : {"path=/0 by=A", "path=/1 by=B", "path=/2 by=B", "path=/3 by=A", "path=/4 by=A"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out << log_;
  EXPECT_EQ(r.out.find("alert"), std::string::npos) << r.out;
  EXPECT_EQ(count("freeze "), 2) << log_;
  // "K" before /1 requested a KeyUpdate that OpenSSL owes until its next write:
  // the freeze sends it (new TX key, sequence 0) instead of losing it in the move.
  EXPECT_TRUE(std::regex_search(
      log_, std::regex("freeze conn=0 req=1 by=A backend=openssl version=TLS1.3 cipher=\\S+ tx_seq=0 rx_seq=1 ")))
      << log_;
  expect_clean_servers();
}

// Negative control: one wrong TX sequence number after the move, and the
// client must refuse the next record as a bad record MAC.
TEST_F(Handoff, WrongSequenceNumberMakesTheClientReportBadRecordMac) {
  plan_.move_at = {1};
  plan_.corrupt_tx_seq = true;
  Command r = run_with(client_script() + " plain PORT");
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("path=/0 by=A"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("path=/1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DECRYPTION_FAILED_OR_BAD_RECORD_MAC"), std::string::npos) << r.out;

  // curl silently retries a request on a fresh connection when a reused one
  // dies, so its control moves the connection before the first request.
  plan_.move_at = {};
  plan_.move_after_handshake = true;
  Command c = run_with("curl -sS -k --http1.1" + curl_urls(1));
  EXPECT_NE(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("bad record mac"), std::string::npos) << c.out << log_;
}

}  // namespace
}  // namespace xo::tls::testing

#if XO_TLS_HAVE_TCP
namespace xo::tls::testing {
namespace {

// TCP and TLS move together: the holder blocks the flow (nftables), freezes
// TLS, snapshots the socket with TCP_REPAIR (common/tcp) and closes it
// silently; the other process restores the socket and continues TLS on XO's
// record layer. No fd crosses between the processes.
TEST_F(Handoff, CurlOverTcpRepairMovesThereAndBack) {
  plan_.tcp_repair = true;
  plan_.move_at = {1, 2, 3};
  Command r = run_with("curl -sS -k --http1.1 --tlsv1.3" + curl_urls(5));
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_EQ(r.out, expected_bodies("ABABB")) << log_;
  EXPECT_EQ(count("tcp=repair"), 3) << log_;
  expect_clean_servers();
}

TEST_F(Handoff, PythonBulkOverTcpRepairTls12) {
  plan_.tcp_repair = true;
  plan_.move_at = {1, 2, 3};
  Command r = run_with(client_script() + " bulk PORT tls12");
  EXPECT_EQ(r.status, 0) << r.out << log_;
  EXPECT_NE(r.out.find("OK bulk"), std::string::npos) << r.out;
  EXPECT_EQ(count("tcp=repair"), 3) << log_;
  expect_clean_servers();
}

}  // namespace
}  // namespace xo::tls::testing
#endif
