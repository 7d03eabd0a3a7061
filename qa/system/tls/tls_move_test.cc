// Live HTTPS connections moved frontend → backend0 → frontend → backend0
// between lab hosts under unmodified clients (curl, python3 ssl). The TCP
// snapshot (common/tcp) and the TLS state (common/tls) cross as their encoded
// bytes; the first leg runs on OpenSSL, every later one on XO's record layer.
// Every test builds its own lab and checks every byte, that no RST crossed the
// client's wire and that no host kept a connection socket afterwards.
#include <gtest/gtest.h>

#include <regex>

#include "qa/system/tls/tls_move_lab.h"

namespace xo::tcpmove {
namespace {

using namespace tlslab;

// ---- curl --http1.1, keep-alive over four URLs, one per protocol/suite ----

struct Suite {
  const char* name;
  std::vector<std::string> curl_args;
  const char* version;  // as tls::to_string
  const char* cipher;   // tls::cipher_info().name
};

void PrintTo(const Suite& s, std::ostream* os) { *os << s.name; }

class TlsMoveCurl : public TlsMove, public ::testing::WithParamInterface<Suite> {};

TEST_P(TlsMoveCurl, KeepAliveFrontendBackendFrontendBackend) {
  const Suite& suite = GetParam();
  START(by_seq({{1, "frontend"}, {2, "backend0"}, {3, "frontend"}, {4, "backend0"}}));
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "--http1.1", "--cacert", cafile_,
                                   // The self-signed certificate names "xo-lab"; the lab's address serves it.
                                   "--resolve", "xo-lab:" + std::to_string(kPort) + ":" + lab_->service_ip(),
                                   "-D", dir_ + "/headers", "-w", "%{num_connects}\\n"};
  argv.insert(argv.end(), suite.curl_args.begin(), suite.curl_args.end());
  const uint64_t sizes[] = {300000, 1000000, 50000, 200000};
  for (int i = 0; i < 4; ++i)
    argv.insert(argv.end(), {"-o", dir_ + "/body" + std::to_string(i),
                             "https://xo-lab:" + std::to_string(kPort) + "/data/" + std::to_string(sizes[i]) + "/" +
                                 std::to_string(i + 11)});
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns, argv, std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n0\n0\n") << "curl did not reuse one connection";
  std::string headers = ReadFile(dir_ + "/headers");
  std::regex by_re("X-Served-By: (\\S+)", std::regex::icase), seq_re("X-Request-Seq: (\\S+)", std::regex::icase);
  std::string by, seq;
  for (std::sregex_iterator it(headers.begin(), headers.end(), by_re), end; it != end; ++it) by += (*it)[1].str() + " ";
  for (std::sregex_iterator it(headers.begin(), headers.end(), seq_re), end; it != end; ++it) seq += (*it)[1].str() + " ";
  EXPECT_EQ(by, "frontend backend0 frontend backend0 ");
  EXPECT_EQ(seq, "1 2 3 4 ");
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body" + std::to_string(i)), sizes[i], i + 11)) << "body " << i;
  auto moves = Moves(3);
  ASSERT_EQ(moves.size(), 3u);
  EXPECT_EQ(moves[0].to, "backend0");
  EXPECT_EQ(moves[1].to, "frontend");
  EXPECT_EQ(moves[2].to, "backend0");
  auto resumed = ResumedStates();
  ASSERT_EQ(resumed.size(), 3u);
  for (const auto& r : resumed) {
    EXPECT_EQ(r.version, suite.version);
    EXPECT_EQ(r.cipher, suite.cipher);
  }
  // Each leg sent records, so the carried TX sequence grows from move to move.
  EXPECT_LT(resumed[0].tx_seq, resumed[1].tx_seq);
  EXPECT_LT(resumed[1].tx_seq, resumed[2].tx_seq);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, TlsMoveCurl,
    ::testing::Values(
        Suite{"tls13_aes128gcm", {"--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"}, "TLS1.3", "aes128gcm"},
        Suite{"tls13_aes256gcm", {"--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"}, "TLS1.3", "aes256gcm"},
        Suite{"tls13_chacha20poly1305",
              {"--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"},
              "TLS1.3",
              "chacha20poly1305"},
        Suite{"tls12_aes128gcm",
              {"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"},
              "TLS1.2",
              "aes128gcm"},
        Suite{"tls12_chacha20poly1305",
              {"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"},
              "TLS1.2",
              "chacha20poly1305"}),
    [](const ::testing::TestParamInfo<Suite>& i) { return std::string(i.param.name); });

// ---- python3 ssl: 1 MB downloads and 300 KB uploads, checked by hash ----

TEST_F(TlsMove, PythonSslDownloadAndUploadTls13) {
  // GETs (odd seq) move; each POST is answered by whoever holds the connection.
  START(by_seq({{1, "frontend"}, {3, "backend0"}, {5, "frontend"}, {7, "backend0"}}));
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns,
                                      {"/usr/bin/python3", XO_TLS_SYSTEM_DIR "/https_client_check.py",
                                       lab_->service_ip(), std::to_string(kPort), cafile_, "1.3", "1.3"},
                                      std::chrono::seconds(60)));
  EXPECT_EQ(out,
            "1 frontend ok\n2 frontend ok\n3 backend0 ok\n4 backend0 ok\n"
            "5 frontend ok\n6 frontend ok\n7 backend0 ok\n8 backend0 ok\n"
            "TLSv1.3 TLS_AES_256_GCM_SHA384\n");
  Moves(3);
}

TEST_F(TlsMove, PythonSslDownloadAndUploadTls12) {
  START(by_seq({{1, "frontend"}, {3, "backend0"}, {5, "frontend"}, {7, "backend0"}}));
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns,
                                      {"/usr/bin/python3", XO_TLS_SYSTEM_DIR "/https_client_check.py",
                                       lab_->service_ip(), std::to_string(kPort), cafile_, "1.2", "1.2"},
                                      std::chrono::seconds(60)));
  EXPECT_EQ(out,
            "1 frontend ok\n2 frontend ok\n3 backend0 ok\n4 backend0 ok\n"
            "5 frontend ok\n6 frontend ok\n7 backend0 ok\n8 backend0 ok\n"
            "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384\n");
  Moves(3);
  for (const auto& r : ResumedStates()) EXPECT_EQ(r.version, "TLS1.2");
}

TEST_F(TlsMove, CurlOverIPv6) {
  START(by_seq({{1, "frontend"}, {2, "backend0"}, {3, "frontend"}, {4, "backend0"}}));
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "--http1.1", "--cacert", cafile_, "--resolve",
                                   "xo-lab:" + std::to_string(kPort) + ":[" + lab_->service_ip6() + "]", "-w",
                                   "%{num_connects}\\n"};
  for (int i = 0; i < 4; ++i)
    argv.insert(argv.end(), {"-o", dir_ + "/body" + std::to_string(i),
                             "https://xo-lab:" + std::to_string(kPort) + "/data/400000/" + std::to_string(i + 31)});
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns, argv, std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n0\n0\n") << "curl did not reuse one connection";
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body" + std::to_string(i)), 400000, i + 31)) << "body " << i;
  auto moves = Moves(3);
  for (const auto& m : moves) EXPECT_EQ(m.flow.family, AF_INET6);
}

// ---- a move in the middle of a response body ----

TEST_F(TlsMove, CurlResponseFinishedByTheOtherHost) {
  static constexpr uint64_t kSize = 1'000'000, kAt = 333'333;
  Plan plan = by_seq({{2, "frontend"}});
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{kAt, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  ASSERT_OK_AND(auto out,
                lab::run_ok(lab_->client().ns,
                            {"curl", "-sS", "--max-time", "60", "--http1.1", "--cacert", cafile_, "--resolve",
                             "xo-lab:" + std::to_string(kPort) + ":" + lab_->service_ip(), "-w",
                             "%{num_connects}\\n", "-o", dir_ + "/body0",
                             "https://xo-lab:" + std::to_string(kPort) + "/data/1000000/21", "-o", dir_ + "/body1",
                             "https://xo-lab:" + std::to_string(kPort) + "/data/100000/22"},
                            std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n");
  EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body0"), kSize, 21));
  EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body1"), 100000, 22));
  Moves(2);
  EXPECT_EQ(ml_->server("frontend").stats().body_bytes, kAt + 100000);
  EXPECT_EQ(ml_->server("backend0").stats().body_bytes, kSize - kAt);
}

// ---- negative control: the tests can fail ----

TEST_F(TlsMove, WrongTxSequenceAfterTheMoveIsABadRecordMac) {
  expect_no_rst_ = false;  // the client aborts the connection: RSTs are fine here
  // The first request moves (curl silently retries a request that failed on a
  // reused connection, on a new one; a first request it does not retry).
  Plan plan;
  plan.before = [](const std::string& here, const RequestInfo& r) -> std::optional<std::string> {
    if (here == "frontend" && r.seq == 1) return "backend0";
    return std::nullopt;
  };
  START(std::move(plan), /*corrupt_tx_seq=*/true);
  ASSERT_OK_AND(auto res,
                lab::run_in(lab_->client().ns,
                            {"curl", "-sS", "--max-time", "30", "--http1.1", "--cacert", cafile_, "--resolve",
                             "xo-lab:" + std::to_string(kPort) + ":" + lab_->service_ip(), "-o", "/dev/null",
                             "https://xo-lab:" + std::to_string(kPort) + "/data/1000/1"},
                            std::chrono::seconds(40)));
  EXPECT_NE(res.exit_code, 0) << "curl accepted a record sealed with the wrong sequence number";
  EXPECT_NE(res.err.find("bad record mac"), std::string::npos) << "curl said: " << res.err;
  std::cerr << "curl said (expected): " << res.err;
  auto moves = Moves(1);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].to, "backend0");
}

}  // namespace
}  // namespace xo::tcpmove
